package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// committed is the dashboard Grafana provisions, relative to this package.
const committed = "../grafana/dashboards/keygate.json"

// TestCommittedDashboardIsGenerated fails when the committed JSON is not
// byte for byte what the builder makes, so the file is never edited by hand
// and never falls behind the code.
func TestCommittedDashboardIsGenerated(t *testing.T) {
	want, err := render()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		line := 1 + bytes.Count(want[:firstDiff(got, want)], []byte("\n"))
		t.Fatalf("configs/grafana/dashboards/keygate.json differs from the generated dashboard at line %d; regenerate it with\n\tgo run ./configs/dashboard -o configs/grafana/dashboards/keygate.json", line)
	}
}

func firstDiff(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

func TestRunWritesFile(t *testing.T) {
	out := filepath.Join(t.TempDir(), "keygate.json")
	if err := os.WriteFile(out, []byte("stale"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run(out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string            `json:"uid"`
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("written dashboard: %v", err)
	}
	if d.UID != "keygate" || len(d.Panels) == 0 {
		t.Errorf("written dashboard: uid %q, %d panels", d.UID, len(d.Panels))
	}
	entries, err := os.ReadDir(filepath.Dir(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("%d files beside the output, want the output alone (no temporary left)", len(entries))
	}
	if err := run(filepath.Join(t.TempDir(), "missing", "keygate.json")); err == nil {
		t.Error("run into a missing directory: no error")
	}
}

// TestPanelsFillTheGrid: each row's panels fill whole 24-column lines, so
// the builder's left-to-right layout never wraps a panel off its line.
func TestPanelsFillTheGrid(t *testing.T) {
	for _, r := range rows() {
		var line uint32
		for _, p := range r.panels {
			line += p.width
			if line > fullWidth {
				t.Errorf("row %q: a line is wider than %d columns", r.title, fullWidth)
			}
			if line == fullWidth {
				line = 0
			}
		}
		if line != 0 {
			t.Errorf("row %q: its last line is %d columns, want %d", r.title, line, fullWidth)
		}
	}
}
