package config

import (
	"strings"
	"testing"
)

func TestRedisSettings(t *testing.T) {
	key := "OPENROUTER_API_KEY_1=sk-or-v1-7c1e94b2d05fa8e3916c4b7d2a08f5e1c3b96a74d82e0f15"
	c, err := Load([]string{key}, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if c.RedisURL != "" || c.RedisPrefix != "keygate:" {
		t.Fatalf("defaults: REDIS_URL %q, REDIS_PREFIX %q", c.RedisURL, c.RedisPrefix)
	}
	c, err = Load([]string{key, "REDIS_URL=rediss://app:pw@cache:6380/1", "REDIS_PREFIX=pool-a:"}, nil, true)
	if err != nil || c.RedisURL != "rediss://app:pw@cache:6380/1" || c.RedisPrefix != "pool-a:" {
		t.Fatalf("got %+v, %v", c, err)
	}
	const pw = "hunter2-very-secret"
	for _, tc := range []struct{ env, want string }{
		{"REDIS_URL=redis://:" + pw + "@redis:notaport", "REDIS_URL"},
		{"REDIS_URL=localhost:6379", "REDIS_URL"},
		{"REDIS_URL=http://:" + pw + "@redis", "REDIS_URL"},
		{"REDIS_URL=redis:/:" + pw + "@redis:6379", "REDIS_URL"},
		{"REDIS_URL=redis:app:" + pw + "@redis:6379", "REDIS_URL"},
		{"OPENROUTER_BASE_URL=https:/" + pw + "@up.example/v1", "OPENROUTER_BASE_URL"},
		{"REDIS_PREFIX=two words", "REDIS_PREFIX"},
	} {
		t.Run(tc.env, func(t *testing.T) {
			_, err := Load([]string{key, tc.env}, nil, true)
			if err == nil {
				t.Fatal("accepted")
			}
			if msg := err.Error(); !strings.Contains(msg, tc.want) || strings.Contains(msg, pw) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q: want one line naming %s, without the password", msg, tc.want)
			}
		})
	}
}
