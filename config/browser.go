package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// validateBrowser checks CORS_ORIGINS and ALLOWED_HOSTS and drops their
// blank items: each origin is "*" or scheme://host[:port], compared by the
// gateway with a browser's Origin header as the browser sends it.
func (c *Config) validateBrowser() error {
	origins := c.CORSOrigins[:0]
	for _, o := range c.CORSOrigins {
		o = strings.TrimRight(strings.TrimSpace(o), "/")
		if o == "" {
			continue
		}
		if o != "*" {
			u, err := url.Parse(o)
			if err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
				return fmt.Errorf("invalid CORS_ORIGINS item %q: want * or an origin like https://app.example.com", o)
			}
			o = strings.ToLower(o)
		}
		origins = append(origins, o)
	}
	c.CORSOrigins = origins
	hosts := c.AllowedHosts[:0]
	for _, h := range c.AllowedHosts {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" {
			continue
		}
		if strings.ContainsAny(h, "/@ ") {
			return fmt.Errorf("invalid ALLOWED_HOSTS item %q: want a host name like keygate.internal (no scheme, no path)", h)
		}
		hosts = append(hosts, hostName(h))
	}
	c.AllowedHosts = hosts
	return nil
}

// hostName is an ALLOWED_HOSTS item as the gateway compares it with a
// request's Host, which it strips of its port, an IPv6 literal's brackets
// and a DNS root dot: a Host value copied whole (keygate.internal:4000, as
// the 403 quotes it) names its host, and an IP address is in its usual form.
func hostName(h string) string {
	if strings.IndexByte(h, ':') >= 0 {
		if host, _, err := net.SplitHostPort(h); err == nil {
			h = host
		}
	}
	h = strings.TrimSuffix(strings.Trim(h, "[]"), ".")
	if ip := net.ParseIP(h); ip != nil {
		return ip.String()
	}
	return h
}
