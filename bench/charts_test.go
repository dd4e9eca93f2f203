package main

import (
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fixedReport is a report with every figure the charts draw.
func fixedReport() *Report {
	r := &Report{}
	r.Throughput = Throughput{DirectRPS: 9000, FloorRPS: 6000, PooledFloorRPS: 6500, KeygateRPS: 5800}
	r.CPU = CPUResult{BenchDirectUs: 80, FloorUs: 60, PooledFloorUs: 55, KeygateUs: 65}
	lat := Lat{P50Ms: 0.3, P90Ms: 0.5, P99Ms: 1.2}
	r.Latency = []RateLatency{{Rate: 1000, Direct: lat, Floor: lat, Keygate: lat}, {Rate: 3000, Direct: lat, Floor: lat, Keygate: lat}}
	r.Memory.Curve = []CurvePoint{{Streams: 100, FloorKiB: 40, KeygateKiB: 38}, {Streams: 1000, FloorKiB: 35, KeygateKiB: 33}, {Streams: 10000, FloorKiB: 34, KeygateKiB: 30}}
	r.TLS = &TLSResult{RPS: map[string]float64{"direct": 7000, "floor": 4000, "floor+pool": 4100, "keygate": 3900},
		CPUUs: map[string]float64{"direct": 90, "floor": 80, "floor+pool": 78, "keygate": 85}}
	return r
}

// svgTexts parses an SVG document, failing on malformed XML, and returns
// the text of its <text> elements.
func svgTexts(t *testing.T, b []byte) []string {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(string(b)))
	var texts []string
	root, inText := "", false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("invalid SVG: %v", err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = el.Name.Local
			}
			inText = el.Name.Local == "text"
		case xml.CharData:
			if inText {
				texts = append(texts, strings.TrimSpace(string(el)))
			}
		case xml.EndElement:
			inText = false
		}
	}
	if root != "svg" {
		t.Fatalf("root element %q, want svg", root)
	}
	return texts
}

func TestCharts(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{chartThroughput, []string{"plain HTTP/1.1", "TLS + HTTP/2", "direct", "floor", "floor+pool", "keygate"}},
		{chartCPU, []string{"plain HTTP/1.1", "TLS + HTTP/2", "direct (bench process)", "keygate"}},
		{chartLatency, []string{"p50", "p90", "p99", "keygate", "@1000", "@3000"}},
		{chartMemory, []string{"floor", "keygate", "open streams", "KiB per stream"}},
	}
	dir := t.TempDir()
	files, err := writeCharts(dir, fixedReport())
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(tests) {
		t.Fatalf("wrote %v, want %d charts", files, len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(dir, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			texts := svgTexts(t, b)
			for _, w := range tt.want {
				if !slices.Contains(texts, w) {
					t.Errorf("no text %q in %s: %q", w, tt.file, texts)
				}
			}
		})
	}
}

// TestChartsWithoutTLS checks that a run without the TLS phase charts
// the plain figures alone, and without a curve no memory chart.
func TestChartsWithoutTLS(t *testing.T) {
	r := fixedReport()
	r.TLS, r.Memory.Curve = nil, nil
	charts, err := makeCharts(r)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range charts {
		names = append(names, c.file)
		b, err := renderSVG(c.plot)
		if err != nil {
			t.Fatal(err)
		}
		if texts := svgTexts(t, b); slices.Contains(texts, "TLS + HTTP/2") {
			t.Errorf("%s has a TLS series without TLS figures", c.file)
		}
	}
	if !slices.Equal(names, []string{chartThroughput, chartCPU, chartLatency}) {
		t.Errorf("charts %v", names)
	}
}
