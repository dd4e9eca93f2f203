package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Chart files -charts writes, each from the same run's report.
const (
	chartThroughput = "throughput.svg"
	chartCPU        = "cpu.svg"
	chartLatency    = "latency.svg"
	chartMemory     = "memory.svg"
)

// chartTargets are the targets of the throughput and CPU charts, with the
// report's names.
var chartTargets = []string{"direct", "floor", "floor+pool", "keygate"}

// chart is one chart to write: its file name and the plot.
type chart struct {
	file string
	plot *plot.Plot
}

// writeCharts renders the report's charts as SVG into dir and returns the
// files written.
func writeCharts(dir string, r *Report) ([]string, error) {
	charts, err := makeCharts(r)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("charts: %w", err)
	}
	var files []string
	for _, c := range charts {
		b, err := renderSVG(c.plot)
		if err != nil {
			return files, fmt.Errorf("chart %s: %w", c.file, err)
		}
		path := filepath.Join(dir, c.file)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return files, fmt.Errorf("chart %s: %w", c.file, err)
		}
		files = append(files, path)
	}
	return files, nil
}

// renderSVG draws p as an SVG document, 16 × 9 cm.
func renderSVG(p *plot.Plot) ([]byte, error) {
	wt, err := p.WriterTo(16*vg.Centimeter, 9*vg.Centimeter, "svg")
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// makeCharts builds every chart the report has figures for.
func makeCharts(r *Report) ([]chart, error) {
	var out []chart
	plain := func(pick func(name string) float64) plotter.Values {
		v := make(plotter.Values, len(chartTargets))
		for i, name := range chartTargets {
			v[i] = pick(name)
		}
		return v
	}
	rps := map[string]float64{"direct": r.Throughput.DirectRPS, "floor": r.Throughput.FloorRPS,
		"floor+pool": r.Throughput.PooledFloorRPS, "keygate": r.Throughput.KeygateRPS}
	cpu := map[string]float64{"direct": r.CPU.BenchDirectUs, "floor": r.CPU.FloorUs,
		"floor+pool": r.CPU.PooledFloorUs, "keygate": r.CPU.KeygateUs}
	series := []namedValues{{"plain HTTP/1.1", plain(func(n string) float64 { return rps[n] })}}
	cpuSeries := []namedValues{{"plain HTTP/1.1", plain(func(n string) float64 { return cpu[n] })}}
	if x := r.TLS; x != nil {
		series = append(series, namedValues{"TLS + HTTP/2", plain(func(n string) float64 { return x.RPS[n] })})
		cpuSeries = append(cpuSeries, namedValues{"TLS + HTTP/2", plain(func(n string) float64 { return x.CPUUs[n] })})
	}
	labels := []string{"direct", "floor", "floor+pool", "keygate"}
	p, err := barChart("max throughput (closed loop)", "req/s", labels, series)
	if err != nil {
		return nil, err
	}
	out = append(out, chart{chartThroughput, p})
	cpuLabels := append([]string{"direct (bench process)"}, labels[1:]...)
	if p, err = barChart("CPU time per request", "µs", cpuLabels, cpuSeries); err != nil {
		return nil, err
	}
	out = append(out, chart{chartCPU, p})
	if len(r.Latency) > 0 {
		var names []string
		var p50, p90, p99 plotter.Values
		for _, l := range r.Latency {
			for _, tl := range []struct {
				name string
				lat  Lat
			}{{"direct", l.Direct}, {"floor", l.Floor}, {"keygate", l.Keygate}} {
				names = append(names, tl.name+"\n@"+strconv.Itoa(l.Rate))
				p50, p90, p99 = append(p50, tl.lat.P50Ms), append(p90, tl.lat.P90Ms), append(p99, tl.lat.P99Ms)
			}
		}
		if p, err = barChart("latency at fixed rates (req/s)", "ms", names, []namedValues{{"p50", p50}, {"p90", p90}, {"p99", p99}}); err != nil {
			return nil, err
		}
		out = append(out, chart{chartLatency, p})
	}
	if len(r.Memory.Curve) > 0 {
		if p, err = memoryChart(r.Memory.Curve); err != nil {
			return nil, err
		}
		out = append(out, chart{chartMemory, p})
	}
	return out, nil
}

// namedValues is one series of a bar chart.
type namedValues struct {
	name   string
	values plotter.Values
}

// barChart draws groups of bars, one bar per series in each group.
func barChart(title, unit string, groups []string, series []namedValues) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = unit
	p.Y.Min = 0
	w := vg.Points(float64(min(40, 240/max(len(groups)*len(series), 1))))
	for i, s := range series {
		b, err := plotter.NewBarChart(s.values, w)
		if err != nil {
			return nil, fmt.Errorf("%s, %s: %w", title, s.name, err)
		}
		b.LineStyle.Width = 0
		b.Color = plotutil.Color(i)
		b.Offset = w * vg.Length(2*i-len(series)+1) / 2
		p.Add(b)
		p.Legend.Add(s.name, b)
	}
	top := 0.0
	for _, s := range series {
		top = max(top, slices.Max(s.values))
	}
	p.Y.Max = 1.3 * top // room for the legend above the bars
	p.Legend.Top = true
	p.NominalX(groups...)
	return p, nil
}

// memoryChart draws RSS per stream against the streams open, floor and
// keygate.
func memoryChart(curve []CurvePoint) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "RSS per open stream (fresh process each)"
	p.X.Label.Text = "open streams"
	p.Y.Label.Text = "KiB per stream"
	p.Y.Min = 0
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	floor, kg := make(plotter.XYs, len(curve)), make(plotter.XYs, len(curve))
	top := 0.0
	for i, c := range curve {
		top = max(top, c.FloorKiB, c.KeygateKiB)
		floor[i] = plotter.XY{X: float64(c.Streams), Y: c.FloorKiB}
		kg[i] = plotter.XY{X: float64(c.Streams), Y: c.KeygateKiB}
	}
	if err := plotutil.AddLinePoints(p, "floor", floor, "keygate", kg); err != nil {
		return nil, fmt.Errorf("memory chart: %w", err)
	}
	p.Y.Max = 1.3 * top // room for the legend
	p.Legend.Top = true
	return p, nil
}
