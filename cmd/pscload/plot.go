package main

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Why gonum/plot rather than drawing with image/png: a plot a user reads
// needs axes with ticks, labels, a legend and a log scale, and text needs a
// font rasteriser; by hand that is a few hundred lines of our own to keep.
// gonum/plot v0.17.0 is maintained, pure Go, and only this command links
// it: the sidecar binary does not grow.

// minPlotMs is the floor of the latency axis (a log scale cannot show 0).
const minPlotMs = 0.01

// writePlot draws the timeline as a PNG: latency p50 and p99 per second of
// intended send time (log scale) above, throughput per second below.
func writePlot(w io.Writer, rep *Report) error {
	lat := plot.New()
	lat.Title.Text = fmt.Sprintf("pscload %s  %d conns  %d B  keys %.0f%%: latency from intended send time",
		rep.Target, rep.Connections, rep.PayloadBytes, 100*rep.Keys)
	lat.X.Label.Text = "second of run (by intended send time)"
	lat.Y.Label.Text = "latency ms (log)"
	lat.Y.Scale = plot.LogScale{}
	lat.Y.Tick.Marker = logTicks{}
	lat.Add(plotter.NewGrid())

	thr := plot.New()
	thr.Title.Text = "throughput"
	thr.X.Label.Text = "second of run"
	thr.Y.Label.Text = "requests/s"
	thr.Add(plotter.NewGrid())

	var p50, p99, intended, sent, ok, errs plotter.XYs
	for _, s := range rep.Timeline {
		x := float64(s.T) + 0.5
		if s.Intended > 0 {
			p50 = append(p50, plotter.XY{X: x, Y: math.Max(s.P50, minPlotMs)})
			p99 = append(p99, plotter.XY{X: x, Y: math.Max(s.P99, minPlotMs)})
		}
		intended = append(intended, plotter.XY{X: x, Y: float64(s.Intended)})
		sent = append(sent, plotter.XY{X: x, Y: float64(s.Sent)})
		ok = append(ok, plotter.XY{X: x, Y: float64(s.OK)})
		errs = append(errs, plotter.XY{X: x, Y: float64(s.Errors)})
	}
	if err := addLines(lat, []series{
		{"p50", p50, color.RGBA{B: 200, A: 255}, nil},
		{"p99", p99, color.RGBA{R: 200, A: 255}, nil},
	}); err != nil {
		return err
	}
	if err := addLines(thr, []series{
		{"intended", intended, color.RGBA{R: 120, G: 120, B: 120, A: 255}, []vg.Length{vg.Points(4), vg.Points(3)}},
		{"sent", sent, color.RGBA{B: 200, A: 255}, nil},
		{"2xx answered", ok, color.RGBA{G: 150, A: 255}, nil},
		{"errors", errs, color.RGBA{R: 200, A: 255}, nil},
	}); err != nil {
		return err
	}
	if len(p99) == 0 { // nothing sent: keep the log axis drawable
		lat.Y.Min, lat.Y.Max = minPlotMs, 1
	}
	// Headroom above the lines for the legends, which sit top left.
	lat.Y.Max *= 4
	thr.Y.Min, thr.Y.Max = 0, thr.Y.Max*1.3
	end := math.Max(1, float64(len(rep.Timeline)))
	for _, p := range []*plot.Plot{lat, thr} {
		p.Legend.Top, p.Legend.Left = true, true
		p.Legend.XOffs = vg.Points(8)
		p.X.Min, p.X.Max = 0, end
		p.X.Tick.Marker = secondTicks{}
	}
	thr.Y.Tick.Marker = plainTicks{}

	img := vgimg.New(vg.Points(900), vg.Points(600))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Points(4), PadBottom: vg.Points(4),
		PadLeft: vg.Points(4), PadRight: vg.Points(8), PadY: vg.Points(12)}
	canvases := plot.Align([][]*plot.Plot{{lat}, {thr}}, tiles, dc)
	lat.Draw(canvases[0][0])
	thr.Draw(canvases[1][0])
	_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(w)
	return err
}

type series struct {
	name   string
	xys    plotter.XYs
	color  color.Color
	dashes []vg.Length
}

func addLines(p *plot.Plot, ss []series) error {
	for _, s := range ss {
		if len(s.xys) == 0 {
			continue
		}
		l, err := plotter.NewLine(s.xys)
		if err != nil {
			return fmt.Errorf("pscload: plot %s: %w", s.name, err)
		}
		l.Color = s.color
		l.Width = vg.Points(1.2)
		l.Dashes = s.dashes
		p.Add(l)
		p.Legend.Add(s.name, l)
	}
	return nil
}

// secondTicks marks whole seconds on a time axis: about ten labelled ticks,
// at a step of 1, 2, 5, 10, 20, 30, 60... seconds, the same on both panels.
type secondTicks struct{}

func (secondTicks) Ticks(lo, hi float64) []plot.Tick {
	span := hi - lo
	step := 1.0
	for _, s := range []float64{1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600} {
		step = s
		if span/s <= 12 {
			break
		}
	}
	var ticks []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64)})
	}
	return ticks
}

// plainTicks are gonum's default ticks labelled without trailing zeros
// ("500", not "500.00").
type plainTicks struct{}

func (plainTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = strconv.FormatFloat(ticks[i].Value, 'f', -1, 64)
		}
	}
	return ticks
}

// logTicks label 1, 2 and 5 times each power of ten on a log axis (only the
// powers when the axis spans more than four decades), with minor ticks
// between; gonum's LogTicks label only the powers, which leaves a narrow
// latency range with a single label.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	if lo <= 0 || hi <= lo {
		return nil
	}
	wide := math.Log10(hi/lo) > 4
	var ticks []plot.Tick
	for d := math.Floor(math.Log10(lo)); d <= math.Ceil(math.Log10(hi)); d++ {
		p := math.Pow(10, d)
		for m := 1.0; m < 10; m++ {
			v := m * p
			if v < lo || v > hi {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || (!wide && (m == 2 || m == 5)) {
				t.Label = strconv.FormatFloat(v, 'g', -1, 64)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}
