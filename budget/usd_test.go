package budget

import "testing"

// TestUSD: cents, and below ten cents two significant digits, so that a
// nearly spent cap reads as neither more than it has nor as nothing.
func TestUSD(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{
		{0, "$0.00"}, {4.2, "$4.20"}, {1234.5678, "$1234.57"}, {0.1, "$0.10"}, {0.25, "$0.25"},
		{0.05, "$0.05"}, {0.005, "$0.005"}, {0.001, "$0.001"}, {0.001234, "$0.0012"},
		{0.0999, "$0.10"}, {0.000001, "$0.000001"}, {1e-9, "$0.00"}, {-0.003, "-$0.003"}, {-2.5, "-$2.50"},
	} {
		if got := USD(tc.v); got != tc.want {
			t.Errorf("USD(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}
