package main

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Colours: each target's series, and the two kinds of event line (what
// the runner did; what the target's status showed).
var (
	targetColors = []color.Color{
		color.RGBA{R: 0x15, G: 0x65, B: 0xc0, A: 255}, // sessionproxy, as in the wrk chart
		color.RGBA{R: 0x00, G: 0x96, B: 0x39, A: 255}, // a second target: nginx's green there
	}
	actionColor   = color.RGBA{R: 0xc6, G: 0x28, B: 0x28, A: 255}
	observedColor = color.RGBA{R: 0x2e, G: 0x7d, B: 0x32, A: 255}
	staleColor    = color.RGBA{R: 0xef, G: 0x6c, B: 0x00, A: 255} // also a node down that no fault explains
)

// Layout, in points: the band above the panels holds the event labels,
// rotated so that events a second apart do not overwrite each other.
const (
	chartW      = 11 * vg.Inch
	chartH      = 10 * vg.Inch
	titleBand   = 36
	labelBand   = 150
	labelSize   = 9
	labelChars  = 44 // longer merged labels are cut: the events table has them all
	labelMargin = 3
)

// drawFaultChart draws req/s, p99 and errors/s over time, one panel each
// with a shared time axis, every run on the same panels, and a vertical
// line at each event. SVG or PNG, by file's extension.
func drawFaultChart(rep faultReport, file string) error {
	if len(rep.Runs) == 0 {
		return fmt.Errorf("no run to draw")
	}
	xmax := float64(len(rep.Runs[0].Seconds))
	panels := []*plot.Plot{
		faultPanel("req/s", xmax, false),
		faultPanel("latency ms (log)", xmax, false),
		faultPanel("errors/s", xmax, true),
	}
	if err := decorate(rep, panels); err != nil {
		return err
	}

	c, err := newCanvas(file, chartW, chartH, 110)
	if err != nil {
		return err
	}
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: len(panels), Cols: 1, PadTop: titleBand + labelBand, PadBottom: 6, PadLeft: 6, PadRight: 12, PadY: 10}
	grid := make([][]*plot.Plot, len(panels))
	for i, p := range panels {
		grid[i] = []*plot.Plot{p}
	}
	canvases := plot.Align(grid, tiles, dc)
	for i, p := range panels {
		p.Draw(canvases[i][0])
	}
	top := panels[0].DataCanvas(canvases[0][0])
	drawTitle(dc, rep)
	drawEventLabels(dc, top, panels[0], rep.Runs[0].Events, xmax)

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

// faultPanel is one empty panel; decorate fills it.
func faultPanel(ylabel string, xmax float64, bottom bool) *plot.Plot {
	p := plot.New()
	p.Y.Label.Text = ylabel
	p.X.Min, p.X.Max = 0, xmax
	p.X.Tick.Marker = secondTicks{labels: bottom}
	p.Y.Tick.Marker = countTicks{}
	if bottom {
		p.X.Label.Text = "seconds since the start of the recorded load"
	}
	p.Add(plotter.NewGrid())
	return p
}

// decorate adds the series (a step line per run: a second's value holds
// over the whole second), the 90% band and the event lines, and sets each
// panel's Y range from what it shows.
func decorate(rep faultReport, panels []*plot.Plot) error {
	values := []func(secondStats) float64{
		func(s secondStats) float64 { return float64(s.Requests) },
		func(s secondStats) float64 { return s.P99 },
		func(s secondStats) float64 { return float64(s.Errors) },
	}
	ymax := make([]float64, len(panels))
	pmin := math.Inf(1) // smallest p99 above zero, for the log axis
	series := make([][]plotter.XYs, len(rep.Runs))
	for ri, r := range rep.Runs {
		series[ri] = make([]plotter.XYs, len(panels))
		for pi := range panels {
			xys := make(plotter.XYs, 0, len(r.Seconds)+1)
			for _, s := range r.Seconds {
				v := values[pi](s)
				xys = append(xys, plotter.XY{X: float64(s.T), Y: v})
				ymax[pi] = max(ymax[pi], v)
				if pi == 1 && v > 0 {
					pmin = min(pmin, v)
				}
			}
			series[ri][pi] = closeSteps(xys)
		}
		for _, s := range r.Seconds {
			ymax[1] = max(ymax[1], s.Max)
		}
	}
	// p99 on a log axis: a frozen node's 100 ms stands beside the usual
	// few milliseconds without flattening them. A second without a single
	// answer has no p99; it is drawn at the axis minimum, as a log axis
	// cannot show zero.
	if math.IsInf(pmin, 1) {
		pmin = 1
	}
	panels[1].Y.Scale = plot.LogScale{}
	panels[1].Y.Tick.Marker = plot.LogTicks{Prec: -1}
	panels[1].Y.Min = math.Pow(10, math.Floor(math.Log10(pmin)))
	panels[1].Y.Max = math.Pow(10, math.Ceil(math.Log10(max(ymax[1], pmin*10))))
	for ri, r := range rep.Runs {
		for i := range series[ri][1] {
			series[ri][1][i].Y = max(series[ri][1][i].Y, panels[1].Y.Min)
		}
		for pi, p := range panels {
			l, err := plotter.NewLine(series[ri][pi])
			if err != nil {
				return err
			}
			l.StepStyle = plotter.PostStep
			l.Color = targetColors[ri%len(targetColors)]
			l.Width = vg.Points(1.5)
			p.Add(l)
			switch {
			case pi == 0:
				p.Legend.Add(r.Target, l)
			case pi == 1 && len(rep.Runs) > 1:
				p.Legend.Add(r.Target+" p99", l)
			case pi == 1:
				p.Legend.Add("p99", l)
			}
		}
		if err := addMax(panels[1], r, ri, len(rep.Runs) > 1); err != nil {
			return err
		}
		if r.Summary.Stale > 0 {
			if err := addStale(panels[2], r, &ymax[2]); err != nil {
				return err
			}
		}
	}
	// req/s from zero, so that a dip reads as the fraction it is, with
	// room above the series for the legend.
	panels[0].Y.Min, panels[0].Y.Max = 0, 1.35*ymax[0]
	if m := rep.Runs[0].Summary.PreFaultMedian; m > 0 {
		band, err := hline(recoveryBand*m, float64(len(rep.Runs[0].Seconds)))
		if err != nil {
			return err
		}
		band.Color = color.Gray{Y: 0x70}
		band.Dashes = []vg.Length{vg.Points(2), vg.Points(3)}
		panels[0].Add(band)
		panels[0].Legend.Add("90% of the pre-fault median", band)
	}
	panels[0].Legend.Top = true
	panels[0].Legend.Left = true
	panels[0].Legend.XOffs, panels[0].Legend.YOffs = vg.Points(6), -vg.Points(6)
	panels[0].Legend.TextStyle.Font.Size = vg.Points(10)
	panels[2].Y.Min, panels[2].Y.Max = 0, max(1, 1.15*ymax[2])

	for _, p := range panels {
		for _, e := range charted(rep.Runs[0].Events, p.X.Max) {
			l, err := vline(e.T, p.Y.Min, p.Y.Max)
			if err != nil {
				return err
			}
			l.Color = eventColor(e)
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			p.Add(l)
		}
	}
	return nil
}

// addMax draws each second's slowest request in the latency panel, thin
// and dotted under the p99: a stall that every client meets once (a frozen
// node's timeout) is too few requests to move a p99.
func addMax(p *plot.Plot, r faultRun, ri int, named bool) error {
	xys := make(plotter.XYs, 0, len(r.Seconds)+1)
	for _, s := range r.Seconds {
		xys = append(xys, plotter.XY{X: float64(s.T), Y: max(s.Max, p.Y.Min)})
	}
	l, err := plotter.NewLine(closeSteps(xys))
	if err != nil {
		return err
	}
	l.StepStyle = plotter.PostStep
	l.Color = targetColors[ri%len(targetColors)]
	l.Width = vg.Points(0.8)
	l.Dashes = []vg.Length{vg.Points(1), vg.Points(2)}
	name := "max"
	if named {
		name = r.Target + " max"
	}
	p.Legend.Add(name, l)
	// Bottom left: the log axis starts a decade below the lowest p99.
	p.Legend.Top, p.Legend.Left = false, true
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(6), vg.Points(4)
	p.Legend.TextStyle.Font.Size = vg.Points(10)
	p.Add(l)
	return nil
}

// closeSteps repeats the last point one second later, so that a step
// line draws the last second too.
func closeSteps(xys plotter.XYs) plotter.XYs {
	if n := len(xys); n > 0 {
		xys = append(xys, plotter.XY{X: xys[n-1].X + 1, Y: xys[n-1].Y})
	}
	return xys
}

// addStale draws the answers that showed a lost write, in the errors
// panel, only when there were any.
func addStale(p *plot.Plot, r faultRun, ymax *float64) error {
	xys := make(plotter.XYs, 0, len(r.Seconds)+1)
	for _, s := range r.Seconds {
		xys = append(xys, plotter.XY{X: float64(s.T), Y: float64(s.Stale)})
		*ymax = max(*ymax, float64(s.Stale))
	}
	l, err := plotter.NewLine(closeSteps(xys))
	if err != nil {
		return err
	}
	l.StepStyle = plotter.PostStep
	l.Color = staleColor
	p.Add(l)
	p.Legend.Add(r.Target+": answers that had lost a write", l)
	p.Legend.Top = true
	return nil
}

// charted picks the events drawn: every step of the timeline, each node's
// state changes after a fault (catching_up, up), and a node down that no
// fault explains. The down a fault caused is within 0.1 s of the fault's
// own line, and the return of a node from a down no fault explains is
// left to the events table: on a loaded machine such flapping would
// otherwise bury the faults' own events.
func charted(events []event, xmax float64) []event {
	var out []event
	spurious := map[string]bool{} // node: its last down is unexplained
	for _, e := range events {
		node, state, _ := strings.Cut(e.Name, " ")
		draw := false
		switch {
		case e.Source == "action":
			draw = true
		case state == "down (no fault)":
			spurious[node], draw = true, true
		case state == "down":
			spurious[node] = false
		case state == "catching_up" || state == "up":
			draw = !spurious[node]
		}
		if draw && e.T >= 0 && e.T < xmax { // the final check's kill comes after the load
			out = append(out, e)
		}
	}
	return out
}

func eventColor(e event) color.Color {
	switch {
	case e.Source == "action":
		return actionColor
	case strings.Contains(e.Name, "(no fault)"):
		return staleColor
	}
	return observedColor
}

func vline(x, y0, y1 float64) (*plotter.Line, error) {
	return plotter.NewLine(plotter.XYs{{X: x, Y: y0}, {X: x, Y: y1}})
}

func hline(y, xmax float64) (*plotter.Line, error) {
	return plotter.NewLine(plotter.XYs{{X: 0, Y: y}, {X: xmax, Y: y}})
}

// secondTicks marks every second and labels every fifth (only on the
// bottom panel: the three share one time axis).
type secondTicks struct{ labels bool }

func (t secondTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for s := math.Ceil(lo); s <= hi; s++ {
		tk := plot.Tick{Value: s}
		if int(s)%5 == 0 && t.labels {
			tk.Label = fmt.Sprint(int(s))
		} else if int(s)%5 == 0 {
			tk.Label = " " // a major tick without text
		}
		ticks = append(ticks, tk)
	}
	return ticks
}

// countTicks labels about five round values (1, 2 or 5 times a power of
// ten, never below 1) on an axis of counts; gonum's default ticker puts
// two decimals on numbers of requests.
type countTicks struct{}

func (countTicks) Ticks(lo, hi float64) []plot.Tick {
	if hi <= lo {
		return nil
	}
	raw := (hi - lo) / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * mag
	for _, m := range []float64{1, 2, 5} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	step = max(step, 1)
	var ticks []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64)})
	}
	return ticks
}

func textStyle(c color.Color, size vg.Length) text.Style {
	return text.Style{Color: c, Font: font.From(plot.DefaultFont, size), Handler: plot.DefaultTextHandler}
}

func drawTitle(dc draw.Canvas, rep faultReport) {
	var names []string
	for _, r := range rep.Runs {
		names = append(names, r.Target)
	}
	sty := textStyle(color.Black, 12)
	sty.XAlign, sty.YAlign = draw.XCenter, draw.YTop
	mid := (dc.Min.X + dc.Max.X) / 2
	title := fmt.Sprintf("%s under faults: req/s, p99 latency and errors per second (%s, %s)",
		strings.Join(names, " vs "), rep.Commit, strings.TrimSuffix(rep.Date, "Z"))
	dc.FillText(sty, vg.Point{X: mid, Y: dc.Max.Y - 4}, title)
	sub := textStyle(color.Gray{Y: 0x40}, 9)
	sub.XAlign, sub.YAlign = draw.XCenter, draw.YTop
	dc.FillText(sub, vg.Point{X: mid, Y: dc.Max.Y - 20},
		"red: what the runner did; green: node states read from the proxy's /status every 100 ms; orange: a node down with no fault injected (its return is in the events table)")
}

// drawEventLabels writes each charted event's name above the top panel,
// reading upwards from its line. Events closer than a label's height share
// one label, so that none is drawn over another; the colour is the first
// event's.
func drawEventLabels(dc, top draw.Canvas, p *plot.Plot, events []event, xmax float64) {
	type group struct {
		x     vg.Length
		names []string
		col   color.Color
	}
	var groups []group
	for _, e := range charted(events, xmax) {
		x := top.X(p.X.Norm(e.T))
		if n := len(groups); n > 0 && x-groups[n-1].x < labelSize+2 {
			// "n2 catching_up" after "thaw n2" or "n2 up" after "n2
			// catching_up": the node is named once.
			g := &groups[n-1]
			prev := g.names[len(g.names)-1]
			node, rest, _ := strings.Cut(e.Name, " ")
			if strings.HasPrefix(prev, node+" ") {
				g.names = append(g.names, rest)
			} else {
				g.names = append(g.names, e.Name)
			}
			continue
		}
		groups = append(groups, group{x: x, names: []string{e.Name}, col: eventColor(e)})
	}
	for _, g := range groups {
		sty := textStyle(g.col, labelSize)
		sty.Rotation = math.Pi / 2
		sty.XAlign, sty.YAlign = draw.XLeft, draw.YCenter
		label := strings.Join(g.names, ", ")
		if r := []rune(label); len(r) > labelChars {
			label = string(r[:labelChars-1]) + "…"
		}
		dc.FillText(sty, vg.Point{X: g.x, Y: top.Max.Y + labelMargin}, label)
	}
}

// A canvas is what a chart is drawn on and written out from.
type canvas interface {
	vg.CanvasSizer
	io.WriterTo
}

// newCanvas returns a w×h canvas for file, SVG or PNG (at dpi) by its
// extension.
func newCanvas(file string, w, h vg.Length, dpi int) (canvas, error) {
	switch filepath.Ext(file) {
	case ".svg":
		return vgsvg.New(w, h), nil
	case ".png":
		return vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(dpi))}, nil
	}
	return nil, fmt.Errorf("chart: unknown format %s", file)
}
