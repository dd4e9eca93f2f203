//go:build race

package gateway

// raceOn: the race detector's sync.Pool drops a quarter of what is Put, at
// random, so allocation counts of pooled paths mean nothing under it.
const raceOn = true
