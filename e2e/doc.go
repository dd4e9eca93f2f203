// Package e2e holds keygate's end-to-end tests: the whole gateway, built by
// package app, in front of real upstream servers on loopback (httptest
// handlers and the simulator), driven over HTTP like a client would.
package e2e
