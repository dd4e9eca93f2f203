//go:build !race

package gateway

// raceOn: see race_on_test.go.
const raceOn = false
