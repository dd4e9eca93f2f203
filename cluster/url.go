package cluster

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/keygate/keygate/secret"
)

// ErrURL is wrapped by every error of ParseURL; none of them holds the
// URL's password.
var ErrURL = errors.New("want redis://[user:pass@]host:port/db, rediss://… (TLS) or unix:///path")

// ParseURL reads REDIS_URL: redis://[user:pass@]host[:port][/db],
// rediss://… (TLS, the host's certificate checked against the system roots)
// or unix:///path/to.sock[?db=N]. Query parameters go-redis knows (such as
// dial_timeout) are accepted; the timeouts that keep Redis off the hot path
// are set by NewRedis over them.
func ParseURL(raw string) (*redis.Options, error) {
	shown, hidden := secret.HideUserinfo(raw)
	u, err := url.Parse(raw)
	if err != nil {
		if hidden {
			// The reason may quote a piece of the password (a "port"
			// cut from it at a '#', '/' or '?'): none is given.
			return nil, fmt.Errorf("%w: %s does not parse", ErrURL, shown)
		}
		// url.Error quotes the whole URL; keep only the reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%w: %s", ErrURL, strings.ReplaceAll(err.Error(), raw, "…"))
	}
	switch u.Scheme {
	case "redis", "rediss":
		if u.Hostname() == "" {
			return nil, fmt.Errorf("%w: %s has no host", ErrURL, shown)
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return nil, fmt.Errorf("%w: %s has port %q", ErrURL, shown, p)
			}
		}
		if db := strings.Trim(u.Path, "/"); db != "" {
			if n, err := strconv.Atoi(db); err != nil || n < 0 || strings.Contains(db, "/") {
				return nil, fmt.Errorf("%w: %s: the path must be a database number", ErrURL, shown)
			}
		}
	case "unix":
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			return nil, fmt.Errorf("%w: %s: a socket needs an absolute path, as in unix:///run/redis.sock", ErrURL, shown)
		}
	case "":
		return nil, fmt.Errorf("%w: the URL has no scheme", ErrURL)
	default:
		return nil, fmt.Errorf("%w: scheme %q", ErrURL, u.Scheme)
	}
	o, err := redis.ParseURL(raw)
	if err != nil {
		msg := err.Error()
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
		return nil, fmt.Errorf("%w: %s: %s", ErrURL, shown, msg)
	}
	return o, nil
}
