package keyring

import (
	"slices"
	"testing"
)

func TestExcludeUnion(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b []int
	}{
		{"both empty", nil, nil},
		{"small into empty", nil, []int{0, 5, 63}},
		{"large into small", []int{1}, []int{64, 200}},
		{"small into large", []int{64, 300}, []int{2}},
		{"overlapping", []int{3, 70, 129}, []int{3, 71, 129, 500}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a, b Exclude
			for _, s := range tc.a {
				a.Add(s)
			}
			for _, s := range tc.b {
				b.Add(s)
			}
			a.Union(&b)
			want := slices.Concat(tc.a, tc.b)
			slices.Sort(want)
			want = slices.Compact(want)
			var got []int
			for s := range 600 {
				if a.Has(s) {
					got = append(got, s)
				}
			}
			if !slices.Equal(got, want) || a.Len() != len(want) {
				t.Fatalf("union = %v (len %d), want %v", got, a.Len(), want)
			}
			for _, s := range tc.b { // o is left as it was
				if !b.Has(s) {
					t.Fatalf("union changed its argument: lost %d", s)
				}
			}
		})
	}
}
