package simulator

// Stats is a snapshot of what a Server has seen since it started or since
// the last Reset.
type Stats struct {
	// Total counts every request the server handled, on any path, budget
	// reads included.
	Total int64
	// BudgetReads counts the GET /key, /auth/key and /credits requests with
	// a known key, so that a test can tell them from inference calls.
	BudgetReads int64
	// InFlight is the number of requests being answered right now (a stream
	// counts until its last byte); a test can see with it that a stream is
	// still open, without timing.
	InFlight int64
	// Keys has an entry for every configured key (the raw key), seen or not.
	Keys map[string]KeyStats
	// Unknown counts the requests with a missing or unknown key (all 401).
	Unknown KeyStats
}

// KeyStats counts the requests made with one key.
type KeyStats struct {
	// Requests counts the requests that carried the key, budget reads
	// (GET /key, /credits) apart.
	Requests int64
	// BudgetReads counts the key's GET /key, /auth/key and /credits calls.
	BudgetReads int64
	// ByStatus counts them by the status they were answered with; a request
	// cut off before its headers (client gone, server closed) has none.
	// Only non-zero counts are present.
	ByStatus map[int]int64
}

// Stats returns a snapshot of the counters. Counters are read one by one,
// so under load the snapshot is approximate but never torn per counter.
func (s *Server) Stats() Stats {
	st := Stats{
		Total:       s.total.Load(),
		BudgetReads: s.reads.Load(),
		InFlight:    s.inFlight.Load(),
		Keys:        make(map[string]KeyStats, len(s.keys)),
		Unknown:     s.unknown.snapshot(),
	}
	for k, ks := range s.keys {
		st.Keys[k] = ks.snapshot()
	}
	return st
}

// Reset zeroes the counters, the rate-limit windows included (a key's next
// request is its request number 0 again). Balances, usage and free-model
// quotas stay as they are.
func (s *Server) Reset() {
	s.total.Store(0)
	s.reads.Store(0)
	s.unknown.reset()
	for _, ks := range s.keys {
		ks.reset()
	}
}

func (k *keyState) snapshot() KeyStats {
	ks := KeyStats{Requests: k.requests.Load(), BudgetReads: k.reads.Load(), ByStatus: map[int]int64{}}
	for code := range k.byStatus {
		if n := k.byStatus[code].Load(); n != 0 {
			ks.ByStatus[code] = n
		}
	}
	return ks
}

func (k *keyState) reset() {
	k.requests.Store(0)
	k.reads.Store(0)
	for code := range k.byStatus {
		k.byStatus[code].Store(0)
	}
}
