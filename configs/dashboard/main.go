// Command dashboard writes keygate's Grafana dashboard, built with Grafana's
// typed builder (grafana-foundation-sdk), as the JSON that Grafana
// provisions from configs/grafana/dashboards. The committed file is this
// program's output; a test fails when the two differ. Regenerate with
//
//	go run ./configs/dashboard -o configs/grafana/dashboards/keygate.json
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

//go:generate go run . -o ../grafana/dashboards/keygate.json

func main() {
	out := flag.String("o", "", "write the dashboard to this file (atomically) instead of stdout")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "dashboard:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	b, err := render()
	if err != nil {
		return err
	}
	if out == "" {
		_, err = os.Stdout.Write(b)
		return err
	}
	// Written beside the target and renamed, so a failed run never leaves a
	// half-written dashboard for Grafana to load.
	tmp, err := os.CreateTemp(filepath.Dir(out), ".keygate-dashboard-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", out, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", out, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	return nil
}

// render builds the dashboard and encodes it as indented JSON with a final
// newline, HTML characters (<, >, &) left as they are so that PromQL reads
// the same in the file as in Grafana.
func render() ([]byte, error) {
	d, err := build()
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return buf.Bytes(), nil
}
