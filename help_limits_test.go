package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestHelpListsLimits: every limit is a setting that `keygate -h` lists
// with its default.
func TestHelpListsLimits(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"-h"}, nil, &out, &errb); code != 0 {
		t.Fatalf("exit %d", code)
	}
	help := out.String()
	for name, def := range map[string]string{
		"MAX_BODY_BYTES": "10485760", "MAX_IN_FLIGHT": "4096", "RUN_MAX_MODELS": "32", "METRICS_MAX_MODELS": "200",
		"READ_HEADER_TIMEOUT": "10s", "IDLE_TIMEOUT": "120s", "SHUTDOWN_TIMEOUT": "30s", "UPSTREAM_TIMEOUT": "120s",
	} {
		line := ""
		for _, l := range strings.Split(help, "\n") {
			if strings.HasPrefix(l, name+" ") {
				line = l
			}
		}
		if f := strings.Fields(line); len(f) < 3 || f[1] != def {
			t.Errorf("-h line for %s is %q, want its default %s and a meaning", name, line, def)
		}
	}
}
