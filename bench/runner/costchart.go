package main

import (
	"fmt"
	"image/color"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// drawCostChart draws issue #30's measure in two panels: the proxy's own
// CPU per request by scenario for each target, with the targets (× nginx
// plain) as red lines across each scenario's bars; and the whole stack's CPU
// per request, sessionproxy against the classic stack, with its targets.
func drawCostChart(t table, file string) error {
	groups := []struct{ label, prefix string }{{"1 plain", "1 "}, {"2 read, hot tier", "2 "}, {"3 write, sync", "3 "}, {"4 cold read", "4 "}}
	spTarget := map[string]float64{"1 ": 1.0, "2 ": 1.1, "3 ": 1.6, "4 ": 1.4}
	stackTarget := map[string]float64{"2 ": 0.3, "3 ": 0.35, "4 ": 0.35}
	ngx := find(t.Rows, "nginx", "1 ")
	if ngx == nil || ngx.CPU == 0 {
		return fmt.Errorf("no CPU measured for nginx's plain proxy")
	}
	series := []struct {
		name, target string
		c            color.RGBA
	}{
		{"nginx", "nginx", color.RGBA{0x00, 0x96, 0x39, 255}},
		{"HAProxy", "haproxy", color.RGBA{0x8e, 0x44, 0xad, 255}},
		{"thin fasthttp proxy", "thinproxy", color.RGBA{0x7f, 0x8c, 0x8d, 255}},
		{"sessionproxy", "sessionproxy", color.RGBA{0x15, 0x65, 0xc0, 255}},
		{"sessionproxy pipeline 8", pipelineRow, color.RGBA{0x64, 0xb5, 0xf6, 255}},
	}
	var names []string
	for _, g := range groups {
		names = append(names, g.label)
	}
	w := vg.Points(14)

	p1 := plot.New()
	p1.Title.Text = fmt.Sprintf("proxy CPU per request, µs (%s); red: target for sessionproxy", t.Commit)
	p1.Y.Label.Text = "µs of CPU per request"
	top := 0.0
	for i, s := range series {
		vals := make(plotter.Values, len(groups))
		for j, g := range groups {
			if r := findScenario(t.Rows, s.target, g.prefix); r != nil {
				vals[j] = r.CPU
				top = max(top, r.CPU)
			}
		}
		bars, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return err
		}
		bars.Color = s.c
		bars.LineStyle.Width = 0
		bars.Offset = w * vg.Length(float64(i)-float64(len(series)-1)/2)
		p1.Add(bars)
		p1.Legend.Add(s.name, bars)
	}
	for j, g := range groups {
		y := spTarget[g.prefix] * ngx.CPU
		top = max(top, y)
		if err := addDash(p1, float64(j), y, 0.42); err != nil {
			return err
		}
	}
	p1.NominalX(names...)
	p1.Y.Min, p1.Y.Max = 0, 1.35*top
	p1.Legend.Top, p1.Legend.Left = true, true

	p2 := plot.New()
	p2.Title.Text = "whole stack CPU per request, µs; red: target (× classic)"
	p2.Y.Label.Text = "µs of CPU per request"
	var spv, clv plotter.Values
	var names2 []string
	top = 0
	for _, g := range groups[1:] {
		names2 = append(names2, g.label)
		var a, c float64
		if r := find(t.Rows, "sessionproxy", g.prefix); r != nil {
			a = r.StackCPU
		}
		if r := classicFor(t.Rows, g.prefix); r != nil {
			c = r.StackCPU
		}
		spv, clv = append(spv, a), append(clv, c)
		top = max(top, a, c)
	}
	for i, s := range []struct {
		name string
		v    plotter.Values
		c    color.RGBA
	}{{"classic stack (nginx + session-keeping backends + memcached)", clv, color.RGBA{0xe6, 0x7e, 0x22, 255}}, {"sessionproxy + backends + memcached", spv, color.RGBA{0x15, 0x65, 0xc0, 255}}} {
		bars, err := plotter.NewBarChart(s.v, vg.Points(28))
		if err != nil {
			return err
		}
		bars.Color = s.c
		bars.LineStyle.Width = 0
		bars.Offset = vg.Points(28) * vg.Length(float64(i)-0.5)
		p2.Add(bars)
		p2.Legend.Add(s.name, bars)
	}
	for j, g := range groups[1:] {
		if err := addDash(p2, float64(j), stackTarget[g.prefix]*clv[j], 0.4); err != nil {
			return err
		}
	}
	p2.NominalX(names2...)
	p2.Y.Min, p2.Y.Max = 0, 1.35*top
	p2.Legend.Top, p2.Legend.Left = true, true

	c, err := newCanvas(file, 11*vg.Inch, 9*vg.Inch, 96)
	if err != nil {
		return err
	}
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: 6, PadBottom: 6, PadLeft: 6, PadRight: 12, PadY: 18}
	cv := plot.Align([][]*plot.Plot{{p1}, {p2}}, tiles, dc)
	p1.Draw(cv[0][0])
	p2.Draw(cv[1][0])
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// addDash draws a short red horizontal line at y around x, a target.
func addDash(p *plot.Plot, x, y, half float64) error {
	if y <= 0 {
		return nil
	}
	l, err := plotter.NewLine(plotter.XYs{{X: x - half, Y: y}, {X: x + half, Y: y}})
	if err != nil {
		return err
	}
	l.Color = color.RGBA{0xd0, 0x10, 0x10, 255}
	l.Width = vg.Points(2.5)
	p.Add(l)
	return nil
}
