package config

import (
	"strings"
	"testing"
)

func TestPprofAddrLoopbackOnly(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"", true},
		{"127.0.0.1:6060", true},
		{"localhost:6060", true},
		{"[::1]:6060", true},
		{"127.0.0.2:0", true},
		{":6060", false},
		{"0.0.0.0:6060", false},
		{"10.0.0.1:6060", false},
		{"example.com:6060", false},
		{"127.0.0.1", false},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			c, err := Load([]string{"OPENROUTER_API_KEY_1=" + testKey("1"), "PPROF_ADDR=" + tc.addr}, nil, true)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				if c.PprofAddr != tc.addr {
					t.Fatalf("PprofAddr %q, want %q", c.PprofAddr, tc.addr)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "PPROF_ADDR") {
				t.Fatalf("err %v, want one naming PPROF_ADDR", err)
			}
		})
	}
}
