module unigo.dev/unigo

go 1.26
