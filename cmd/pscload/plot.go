package main

import (
	"fmt"
	"image/color"
	"io"
	"math"

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
	lat.Y.Tick.Marker = plot.LogTicks{Prec: -1}
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
	thr.Y.Min = 0
	lat.Legend.Top, thr.Legend.Top = true, true

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
