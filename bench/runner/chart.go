package main

import (
	"fmt"
	"image/color"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// drawChart draws req/s per scenario, nginx beside sessionproxy, with the
// direct-to-backend limit as a line.
func drawChart(t table, file string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("sessionproxy vs nginx, req/s (%s)", t.Commit)
	p.Y.Label.Text = "requests per second"
	var names []string
	var nginx, sp plotter.Values
	direct := 0.0
	for _, r := range t.Rows {
		switch r.Target {
		case "direct":
			direct = r.RPS
		case "nginx":
			nginx = append(nginx, r.RPS)
			name, _, _ := strings.Cut(r.Scenario, " (") // the table has the details
			names = append(names, name)
		case "sessionproxy":
			sp = append(sp, r.RPS)
		}
	}
	w := vg.Points(28)
	nb, err := plotter.NewBarChart(nginx, w)
	if err != nil {
		return err
	}
	nb.Color = color.RGBA{R: 0x00, G: 0x96, B: 0x39, A: 255}
	nb.Offset = -w / 2
	sb, err := plotter.NewBarChart(sp, w)
	if err != nil {
		return err
	}
	sb.Color = color.RGBA{R: 0x15, G: 0x65, B: 0xc0, A: 255}
	sb.Offset = w / 2
	p.Add(nb, sb)
	p.Legend.Add("nginx", nb)
	p.Legend.Add("sessionproxy", sb)
	p.Legend.Top = true
	if direct > 0 {
		line, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: direct}, {X: float64(len(names)) - 0.5, Y: direct}})
		if err != nil {
			return err
		}
		line.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
		p.Add(line)
		p.Legend.Add("backend direct", line)
	}
	p.NominalX(names...)
	p.Y.Min = 0
	p.Y.Max = 1.25 * max(direct, maxOf(nginx), maxOf(sp)) // room for the legend
	p.Legend.Left = true
	return p.Save(11*vg.Inch, 5*vg.Inch, file)
}

func maxOf(vs plotter.Values) float64 {
	m := 0.0
	for _, v := range vs {
		m = max(m, v)
	}
	return m
}
