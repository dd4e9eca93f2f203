package cluster

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/secret"
)

func TestRefOf(t *testing.T) {
	const raw = "sk-or-v1-0123456789abcdef0123456789abcdef"
	ref := RefOf(3, secret.New(raw))
	if !strings.HasPrefix(string(ref), "3:") || len(ref) != 2+16 || strings.Contains(raw, string(ref)[2:]) {
		t.Fatalf("RefOf = %q, want 3: and 16 hex digits of a digest", ref)
	}
	if RefOf(3, secret.New(raw+"x")) == ref || RefOf(4, secret.New(raw)) == ref {
		t.Fatal("RefOf does not tell keys apart")
	}
	if d := ref.Digest(); d != string(ref)[2:] || RefOf(4, secret.New(raw)).Digest() != d {
		t.Fatalf("Digest = %q, want the secret's part, whatever the id", d)
	}
	if d := KeyRef("ab").Digest(); d != "ab" {
		t.Fatalf("Digest of a ref without an id = %q, want all of it", d)
	}
}

func TestEventRoundTrip(t *testing.T) {
	at := time.UnixMilli(1_800_000_000_123)
	for _, ev := range []Event{
		{Kind: KeyRest, Key: "1:ab", Until: at, Reason: "auth", Status: 401},
		{Kind: AccountRest, Account: "a1b2", Until: at, Reason: "free_quota", Status: 429},
		{Kind: Disable, Key: "1:ab", At: at},
		{Kind: Enable, Key: "1:ab", At: at},
		{Kind: Budget, Key: "1:ab", Account: "a1b2", At: at, Figures: json.RawMessage(`{"limit":5,"usage":0.5}`), USD: 0.25},
		{Kind: Spend, Key: "1:ab", Account: "a1b2", USD: 0.001},
		{Kind: TrialResult, Key: "1:ab", Until: at, OK: true},
		{Kind: AccountBack, Account: "a1b2", Until: at},
	} {
		t.Run(string(ev.Kind), func(t *testing.T) {
			b, err := encode(ev, "me")
			if err != nil {
				t.Fatal(err)
			}
			got, origin, err := decode(b)
			if err != nil || origin != "me" {
				t.Fatalf("decode(%s) = %v, %q", b, err, origin)
			}
			gb, _ := encode(got, "me")
			if string(gb) != string(b) {
				t.Fatalf("round trip changed %s into %s", b, gb)
			}
		})
	}
}

func TestEventInvalid(t *testing.T) {
	for name, ev := range map[string]Event{
		"unknown kind":        {Kind: "x", Key: "1:ab"},
		"rest without key":    {Kind: KeyRest, Until: time.Now()},
		"rest without until":  {Kind: KeyRest, Key: "1:ab"},
		"account rest no acc": {Kind: AccountRest, Key: "1:ab", Until: time.Now()},
		"trial without until": {Kind: TrialResult, Key: "1:ab"},
		"budget without at":   {Kind: Budget, Key: "1:ab"},
		"budget bad figures":  {Kind: Budget, Key: "1:ab", At: time.Now(), Figures: json.RawMessage(`{`)},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := encode(ev, ""); err == nil {
				t.Fatal("encoded")
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"k":"rest","key":"1:ab","u":1800000000123,"r":"auth","s":401,"o":"x"}`,
		`{"k":"budget","key":"1:ab","at":1,"f":{"limit":1}}`,
		`{"k":"spend","key":"1:ab","usd":1e308}`,
		`{"k":"arest","a":"a1","u":-1}`, `[]`, `null`, `{"k":7}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, origin, err := decode(b)
		if err != nil {
			return
		}
		if check(ev) != nil {
			t.Fatalf("decode accepted an invalid event %+v", ev)
		}
		if _, err := encode(ev, origin); err != nil {
			t.Fatalf("a decoded event does not encode: %v", err)
		}
	})
}
