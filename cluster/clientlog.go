package cluster

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
)

// RouteClientLog sends go-redis' own log lines (one per failed dial, which
// while Redis is down is many) to log at Debug, so that the log shows each
// change of Redis' state once, as the Store logs it. go-redis keeps its
// logger process-wide: main calls this once, before NewRedis.
func RouteClientLog(log *slog.Logger) { redis.SetLogger(clientLog{log}) }

type clientLog struct{ log *slog.Logger }

func (c clientLog) Printf(ctx context.Context, format string, v ...any) {
	if c.log.Enabled(ctx, slog.LevelDebug) {
		c.log.DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
	}
}
