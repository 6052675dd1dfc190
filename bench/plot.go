package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// A panel is one horizontal bar chart: a bar per setting.
type panel struct {
	title  string
	unit   string
	labels []string
	values []float64 // 0: not measured (no bar)
	log    bool      // a logarithmic axis, for values spanning decades
	unigo  []bool    // bars drawn in Unigo's colour
}

const (
	scale    = 2 // the 7×13 font and every line drawn twice as large
	panelW   = 520
	rowH     = 18
	labelW   = 150
	valueW   = 90
	titleH   = 26
	panelPad = 12
)

var (
	ink      = color.RGBA{0x20, 0x20, 0x20, 0xff}
	grey     = color.RGBA{0x9a, 0xa0, 0xa6, 0xff}
	blue     = color.RGBA{0x1f, 0x6f, 0xb4, 0xff}
	paper    = color.RGBA{0xff, 0xff, 0xff, 0xff}
	gridLine = color.RGBA{0xe4, 0xe6, 0xe8, 0xff}
)

// plot draws the panels side by side, two per row, into a PNG file.
func plot(file string, panels ...panel) error {
	rows := 0
	for _, p := range panels {
		rows = max(rows, len(p.labels))
	}
	ph := titleH + rows*rowH + panelPad*2
	cols := min(2, len(panels))
	lines := (len(panels) + 1) / 2
	img := image.NewRGBA(image.Rect(0, 0, cols*panelW, lines*ph))
	draw.Draw(img, img.Bounds(), &image.Uniform{paper}, image.Point{}, draw.Src)
	for i, p := range panels {
		p.draw(img, image.Pt(i%2*panelW, i/2*ph))
	}
	big := image.NewRGBA(image.Rect(0, 0, img.Bounds().Dx()*scale, img.Bounds().Dy()*scale))
	for y := 0; y < big.Bounds().Dy(); y++ {
		for x := 0; x < big.Bounds().Dx(); x++ {
			big.Set(x, y, img.At(x/scale, y/scale))
		}
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := png.Encode(f, big); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (p panel) draw(img *image.RGBA, at image.Point) {
	text(img, at.X+panelPad, at.Y+panelPad+10, p.title+" ("+p.unit+")", ink)
	hi, lo := 0.0, math.Inf(1)
	for _, v := range p.values {
		if v > 0 {
			hi, lo = math.Max(hi, v), math.Min(lo, v)
		}
	}
	if hi == 0 {
		return
	}
	x0 := at.X + labelW
	w := panelW - labelW - valueW
	pos := func(v float64) int {
		if p.log {
			// A decade below the smallest value up to the largest.
			a, b := math.Floor(math.Log10(lo))-1, math.Log10(hi)
			return int(float64(w) * (math.Log10(v) - a) / (b - a))
		}
		return int(float64(w) * v / hi)
	}
	y0 := at.Y + panelPad + titleH
	if p.log {
		for e := math.Floor(math.Log10(lo)); e <= math.Log10(hi); e++ {
			x := x0 + pos(math.Pow(10, e))
			fill(img, image.Rect(x, y0-4, x+1, y0+len(p.labels)*rowH), gridLine)
		}
	}
	for i, l := range p.labels {
		y := y0 + i*rowH
		text(img, at.X+panelPad, y+12, l, ink)
		v := p.values[i]
		if v <= 0 {
			text(img, x0+4, y+12, "not run", grey)
			continue
		}
		c := grey
		if i < len(p.unigo) && p.unigo[i] {
			c = blue
		}
		bw := max(pos(v), 1)
		fill(img, image.Rect(x0, y+3, x0+bw, y+rowH-3), c)
		text(img, x0+bw+4, y+12, number(v), ink)
	}
}

// number prints a value with three significant digits.
func number(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func fill(img *image.RGBA, r image.Rectangle, c color.Color) {
	draw.Draw(img, r, &image.Uniform{c}, image.Point{}, draw.Src)
}

func text(img *image.RGBA, x, y int, s string, c color.Color) {
	d := font.Drawer{Dst: img, Src: &image.Uniform{c}, Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}
