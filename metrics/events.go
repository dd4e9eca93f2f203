package metrics

// StreamFailover records that a held stream went on to another key because
// of r; an unknown reason records nothing.
func (m *Metrics) StreamFailover(r FailoverReason) {
	if r >= numFailoverReasons {
		return
	}
	m.failoverCount[r].Inc()
}

// PoolReload records one reload of the key pool: ok when the new pool was
// taken, false when the file was refused and the last good pool kept.
func (m *Metrics) PoolReload(ok bool) {
	if ok {
		m.reloadCount[1].Inc()
		return
	}
	m.reloadCount[0].Inc()
}

// SetRedisUp sets keygate_redis_up: whether this replica reaches the shared
// Redis now. Without Options.Redis the gauge does not exist and this does
// nothing. Until the first call the gauge reads 0.
func (m *Metrics) SetRedisUp(up bool) {
	if m.redisUp == nil {
		return
	}
	if up {
		m.redisUp.Set(1)
		return
	}
	m.redisUp.Set(0)
}
