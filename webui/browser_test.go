package webui

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/keygate/keygate/access"
	"github.com/keygate/keygate/admin"
	"github.com/keygate/keygate/internal/browsertest"
	"github.com/keygate/keygate/secret"
)

// liveWait bounds how long the page may take to show a change of the pool:
// a poll is every 1.5 s, so a few seconds. It is a limit, not a timing; a
// wait ends as soon as its condition holds. (The browser helpers are
// internal/browsertest's, shared with the gateway's e2e test.)
const liveWait = 5 * time.Second

// gateway serves the page and the admin API over pool, as the gateway
// mounts them.
func gateway(t *testing.T, pool *fakePool, clients []secret.Key) string {
	t.Helper()
	g := access.New(clients, secret.New(adminTok))
	mux := http.NewServeMux()
	mux.Handle("/admin/", admin.New(g, pool, nil))
	mux.Handle("/", New(g, pool, nil))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// hangingGateway is gateway with a switch: while hang is set, GET
// /status.json takes the request and never answers.
func hangingGateway(t *testing.T, pool *fakePool) (string, *atomic.Bool) {
	t.Helper()
	g := access.New(nil, secret.New(adminTok))
	page := New(g, pool, nil)
	hang := &atomic.Bool{}
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == StatusPath && hang.Load() {
			select {
			case <-r.Context().Done():
			case <-stop:
			}
			return
		}
		page.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) }) // before Close, which waits for handlers
	return srv.URL, hang
}

func TestBrowser(t *testing.T) {
	b := browsertest.Browser(t)

	t.Run("every key, and a revoked key rests without a reload", func(t *testing.T) {
		pool := newFakePool()
		ctx := browsertest.Tab(t, b)
		browsertest.Do(t, ctx, chromedp.Navigate(gateway(t, pool, nil)+"/"))
		browsertest.Until(t, ctx, "all rows", browsertest.RowsJS+` === 4 && document.querySelector('#keys tbody tr[data-key="4"] td[data-label="key"]').textContent.includes('…4444')`)
		if got := browsertest.Eval[string](t, ctx, `document.body.innerText`); !containsAll(got, "#1", "#2", "#3", "#4", "sk-or-v1-…1111", "a1b2c3d4") {
			t.Fatalf("page text lacks a key:\n%s", got)
		}
		browsertest.Eval[chromedp.Void](t, ctx, `window.__sameDocument = true`)
		pool.set(2, func(k *Key) {
			k.State, k.RestReason, k.RestLeft = StateResting, "auth (401)", Seconds(10*time.Minute)
		})
		browsertest.UntilWithin(t, ctx, liveWait, "key 2 resting", `document.querySelector('tr[data-key="2"]').dataset.state === 'resting' && document.querySelector('tr[data-key="2"]').innerText.includes('auth (401)')`)
		if !browsertest.Eval[bool](t, ctx, `window.__sameDocument === true`) {
			t.Fatal("the page reloaded to show the change")
		}
		if got := browsertest.Eval[bool](t, ctx, `document.querySelectorAll('button[data-action]').length === 0 && document.getElementById('reload').hidden`); !got {
			t.Fatal("admin buttons shown without the admin token")
		}
	})

	t.Run("a free-model block shows in the state, with no free request left", func(t *testing.T) {
		pool := newFakePool()
		ctx := browsertest.Tab(t, b)
		browsertest.Do(t, ctx, chromedp.Navigate(gateway(t, pool, nil)+"/"))
		browsertest.Until(t, ctx, "all rows", browsertest.RowsJS+` === 4`)
		// Keys 1 and 2 share account a1b2c3d4: a 429 free-models-per-day
		// on either blocks both.
		for _, id := range []int{1, 2} {
			pool.set(id, func(k *Key) { k.FreeBlockedLeft = Seconds(58*time.Minute + 10*time.Second) })
		}
		browsertest.UntilWithin(t, ctx, liveWait, "free models blocked", `(() => {
			const cell = (sel, label) => document.querySelector(sel + ' td[data-label="' + label + '"]').textContent;
			return cell('tr[data-key="1"]', 'state').includes('free models blocked 58m10s') &&
				cell('tr[data-key="2"]', 'state').includes('free models blocked 58m10s') &&
				cell('tr[data-key="1"]', 'free req. left') === '0' &&
				cell('tr[data-account="a1b2c3d4"]', 'free req. left') === '0' &&
				cell('tr[data-account="e5f6a7b8"]', 'free req. left') === '48';
		})()`)
		if got := browsertest.Eval[string](t, ctx, `document.querySelector('tr[data-key="1"]').dataset.state`); got != "active" {
			t.Fatalf("a key whose free models are blocked is %q, want active (its paid calls go on)", got)
		}
		if got := browsertest.Eval[string](t, ctx, `document.querySelector('tr[data-key="3"] td[data-label="state"]').textContent`); strings.Contains(got, "free") {
			t.Fatalf("key 3, of another account, shows %q", got)
		}
	})

	t.Run("a keygate that hangs is told, and the page retries", func(t *testing.T) {
		pool := newFakePool()
		url, hang := hangingGateway(t, pool)
		ctx := browsertest.Tab(t, b)
		browsertest.Do(t, ctx, chromedp.Navigate(url+"/"))
		browsertest.Until(t, ctx, "all rows", browsertest.RowsJS+` === 4`)
		hang.Store(true)
		browsertest.Until(t, ctx, "the warning", `!document.getElementById('message').hidden && document.getElementById('message').textContent.includes('keygate is not answering (no answer in 4.5 s); retrying')`)
		hang.Store(false)
		pool.set(1, func(k *Key) { k.Calls = 4242 })
		browsertest.Until(t, ctx, "back", `document.getElementById('message').hidden && document.querySelector('tr[data-key="1"] td[data-label="calls"]').textContent.startsWith('4242')`)
	})

	t.Run("a nearly spent cap reads as what it has", func(t *testing.T) {
		pool := newFakePool()
		ctx := browsertest.Tab(t, b)
		browsertest.Do(t, ctx, chromedp.Navigate(gateway(t, pool, nil)+"/"))
		cell := `document.querySelector('tr[data-key="1"] td[data-label="budget left"]').textContent`
		for _, tc := range []struct {
			left float64
			want string
		}{{0.005, "$0.005 of $5.00"}, {0.001234, "$0.0012 of $5.00"}, {0.05, "$0.05 of $5.00"}, {0, "$0.00 of $5.00"}} {
			left := tc.left
			pool.set(1, func(k *Key) { k.Budget.LimitRemaining = &left })
			browsertest.Until(t, ctx, tc.want, cell+` === `+strconv.Quote(tc.want))
		}
	})

	t.Run("token prompt; a wrong token shows nothing", func(t *testing.T) {
		pool := newFakePool()
		ctx := browsertest.Tab(t, b)
		browsertest.Do(t, ctx, chromedp.Navigate(gateway(t, pool, []secret.Key{secret.New(clientTok)})+"/"))
		browsertest.Until(t, ctx, "prompt", `!document.getElementById('login').hidden`)
		browsertest.Login(t, ctx, "not-a-token")
		browsertest.Until(t, ctx, "refusal", `!document.getElementById('login-error').hidden`)
		if got := browsertest.Eval[bool](t, ctx, browsertest.RowsJS+` === 0 && document.getElementById('data').hidden && sessionStorage.getItem('keygate-token') === null && !document.body.innerText.includes('sk-or-')`); !got {
			t.Fatal("a wrong token showed pool data or was kept")
		}
		browsertest.Login(t, ctx, clientTok)
		browsertest.Until(t, ctx, "rows with the client token", browsertest.RowsJS+` === 4`)
		if got := browsertest.Eval[bool](t, ctx, `document.querySelectorAll('button[data-action]').length === 0 && sessionStorage.getItem('keygate-token') === '`+clientTok+`'`); !got {
			t.Fatal("admin buttons for a client token, or the token not kept in the session")
		}
		// The session keeps the token across a reload of the page, and
		// the prompt goes once the data is shown.
		browsertest.Do(t, ctx, chromedp.Reload())
		browsertest.Until(t, ctx, "rows after a page reload", browsertest.RowsJS+` === 4`)
		browsertest.Until(t, ctx, "no prompt after a page reload", browsertest.RowsJS+` === 4 && document.getElementById('login').hidden && !document.getElementById('data').hidden`)
	})

	t.Run("a token that is not printable ASCII is refused, typed or stored", func(t *testing.T) {
		pool := newFakePool()
		url := gateway(t, pool, []secret.Key{secret.New(clientTok)})
		refused := `!document.getElementById('login').hidden && !document.getElementById('login-error').hidden &&
			document.getElementById('login-error').textContent.includes('not accepted') &&
			sessionStorage.getItem('keygate-token') === null && document.getElementById('message').hidden &&
			document.getElementById('data').hidden && ` + browsertest.RowsJS + ` === 0`
		for _, tok := range []string{clientTok + "\u2019", "\u2026" + clientTok, "t\u00f6ken", "tab\there"} {
			t.Run(tok, func(t *testing.T) {
				ctx := browsertest.Tab(t, b)
				browsertest.Do(t, ctx, chromedp.Navigate(url+"/"))
				browsertest.Until(t, ctx, "prompt", `!document.getElementById('login').hidden`)
				// Typed (pasted) into the prompt: refused at once.
				browsertest.Eval[chromedp.Void](t, ctx, `document.getElementById('token').value = '`+tok+`'; document.querySelector('#login button[type="submit"]').click()`)
				browsertest.Until(t, ctx, "refused at submit", refused)
				// Stored by an older page: dropped at the first poll.
				browsertest.Eval[chromedp.Void](t, ctx, `sessionStorage.setItem('keygate-token', '`+tok+`')`)
				browsertest.Do(t, ctx, chromedp.Reload())
				browsertest.Until(t, ctx, "refused from the session", refused)
				browsertest.Login(t, ctx, clientTok)
				browsertest.Until(t, ctx, "rows with the right token", browsertest.RowsJS+` === 4 && document.getElementById('login').hidden`)
			})
		}
	})

	t.Run("admin buttons disable and enable a key", func(t *testing.T) {
		pool := newFakePool()
		ctx := browsertest.Tab(t, b)
		browsertest.Do(t, ctx, chromedp.Navigate(gateway(t, pool, []secret.Key{secret.New(clientTok)})+"/"))
		browsertest.Login(t, ctx, adminTok)
		btn := func(action string) chromedp.CSS {
			return chromedp.CSS(fmt.Sprintf(`button[data-action=%q][data-id="3"]`, action))
		}
		browsertest.Do(t, ctx, chromedp.WaitVisible(btn("disable")), chromedp.Click(btn("disable")))
		browsertest.Until(t, ctx, "key 3 disabled", `document.querySelector('tr[data-key="3"]').dataset.state === 'disabled'`)
		browsertest.Do(t, ctx, chromedp.WaitVisible(btn("enable")), chromedp.Click(btn("enable")))
		browsertest.Until(t, ctx, "key 3 active", `document.querySelector('tr[data-key="3"]').dataset.state === 'active'`)
		browsertest.Do(t, ctx, chromedp.WaitVisible(btn("check")), chromedp.Click(btn("check")))
		browsertest.Until(t, ctx, "check answer", `document.getElementById('message').textContent.includes('Key #3: $2.20 of $5.00 left')`)
		browsertest.Do(t, ctx, chromedp.Click(chromedp.CSS("#reload")))
		browsertest.Until(t, ctx, "reload answer", `document.getElementById('message').textContent.includes('4 kept), 1 renumbered: #5→#4')`)
		want := []string{"disable 3", "enable 3", "check 3", "reload"}
		if got := pool.called(); !slices.Equal(got, want) {
			t.Fatalf("admin calls = %v, want %v", got, want)
		}
	})

	t.Run("a button drawn before a renumbering reload acts on no other key", func(t *testing.T) {
		pool := newFakePool()
		ctx := browsertest.Tab(t, b)
		browsertest.Do(t, ctx, chromedp.Navigate(gateway(t, pool, []secret.Key{secret.New(clientTok)})+"/"))
		browsertest.Login(t, ctx, adminTok)
		btn := chromedp.CSS(`button[data-action="disable"][data-id="3"]`)
		browsertest.Do(t, ctx, chromedp.WaitVisible(btn))
		// A reload put another key under id 3; the page has not polled
		// since (the fake answers so until the end of the test).
		pool.mu.Lock()
		// Its mask is key 3's (…3333): only the fingerprint the button
		// carries tells them apart.
		pool.renamed = map[int]secret.Key{3: secret.New("sk-or-v1-9f8e7d6c5b4a39281706f5e4d3c2b1a0dddd3333")}
		pool.mu.Unlock()
		browsertest.Do(t, ctx, chromedp.Click(btn))
		browsertest.Until(t, ctx, "the refusal", `document.getElementById('message').textContent.includes('key #3 is now sk-or-v1-…3333, not the key with fingerprint fp-')`)
		if got := pool.called(); len(got) != 0 {
			t.Fatalf("admin calls = %v, want none", got)
		}
	})

	t.Run("rows are updated in place: a selection, a press and a row survive a poll", func(t *testing.T) {
		pool := newFakePool()
		ctx := browsertest.Tab(t, b)
		browsertest.Do(t, ctx, chromedp.Navigate(gateway(t, pool, nil)+"/"))
		browsertest.Do(t, ctx, chromedp.WaitVisible(chromedp.CSS("#signin")), chromedp.Click(chromedp.CSS("#signin")))
		browsertest.Login(t, ctx, adminTok)
		browsertest.Until(t, ctx, "admin buttons", `document.querySelectorAll('button[data-action]').length === 8`)
		const check3 = `document.querySelector('button[data-action="check"][data-id="3"]')`
		browsertest.Eval[chromedp.Void](t, ctx, check3+`.__kept = true;
			document.querySelector('tr[data-key="1"]').__kept = true;
			const r = document.createRange();
			r.selectNodeContents(document.querySelector('tr[data-key="1"] code'));
			getSelection().removeAllRanges();
			getSelection().addRange(r);`)
		calls := func(id int) string {
			return fmt.Sprintf(`document.querySelector('tr[data-key="%d"] td[data-label="calls"]').textContent.startsWith('%d')`, id, 7000+id)
		}
		// A poll that changes both rows, key 3's own included.
		pool.set(1, func(k *Key) { k.Calls = 7001 })
		pool.set(3, func(k *Key) { k.Calls = 7003 })
		browsertest.UntilWithin(t, ctx, liveWait, "the new calls", calls(1)+` && `+calls(3))
		if got := browsertest.Eval[string](t, ctx, `getSelection().toString()`); got != "sk-or-v1-…1111" {
			t.Errorf("selection after a poll %q, want the masked key", got)
		}
		if !browsertest.Eval[bool](t, ctx, check3+`.__kept === true && document.querySelector('tr[data-key="1"]').__kept === true`) {
			t.Fatal("a poll replaced the Check button or key 1's row")
		}

		// A click whose press and release straddle a poll.
		pos := browsertest.Eval[[]float64](t, ctx, `(() => { const b = `+check3+`; b.scrollIntoView(); const r = b.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()`)
		browsertest.Do(t, ctx, chromedp.MouseEvent(chromedp.MousePressed, pos[0], pos[1], chromedp.ButtonLeft, chromedp.ClickCount(1)))
		pool.set(3, func(k *Key) { k.Calls = 8003 })
		browsertest.UntilWithin(t, ctx, liveWait, "a poll while pressed", `document.querySelector('tr[data-key="3"] td[data-label="calls"]').textContent.startsWith('8003')`)
		browsertest.Do(t, ctx, chromedp.MouseEvent(chromedp.MouseReleased, pos[0], pos[1], chromedp.ButtonLeft, chromedp.ClickCount(1)))
		browsertest.Until(t, ctx, "check answer", `document.getElementById('message').textContent.includes('Key #3:')`)

		// Keys come and go: rows follow, in order, the others kept.
		order := `Array.from(document.querySelectorAll('#keys tbody tr')).map(tr => tr.dataset.key).join()`
		pool.remove(2)
		pool.add(Key{ID: 5, Masked: secret.New("sk-or-v1-4a1b2c3d4e5f60718293a4b5c6d7e8f9eeee5555"), Account: "e5f6a7b8", State: StateActive})
		browsertest.UntilWithin(t, ctx, liveWait, "key 2 gone, key 5 added", order+` === '1,3,4,5' && document.querySelector('tr[data-key="5"]').innerText.includes('…5555')`)
		pool.add(Key{ID: 2, Masked: secret.New(rawKeys[1]), Account: "a1b2c3d4", State: StateResting, RestReason: "auth (401)"})
		browsertest.UntilWithin(t, ctx, liveWait, "key 2 back in its place", order+` === '1,2,3,4,5' && document.querySelector('tr[data-key="2"]').dataset.state === 'resting'`)
		if !browsertest.Eval[bool](t, ctx, check3+`.__kept === true && document.querySelector('tr[data-key="1"]').__kept === true`) {
			t.Fatal("a key added or removed replaced the other rows")
		}
		if got := browsertest.Eval[string](t, ctx, `Array.from(document.querySelectorAll('#accounts tbody tr')).map(tr => tr.dataset.account + ':' + tr.querySelector('td[data-label="keys"]').textContent).join()`); got != "a1b2c3d4:2,e5f6a7b8:2,key #4:1" {
			t.Errorf("accounts %s", got)
		}
		if got := browsertest.Eval[int](t, ctx, `document.querySelectorAll('button[data-action]').length`); got != 10 {
			t.Errorf("%d admin buttons for 5 keys, want 10", got)
		}
	})

	t.Run("screenshot under load", func(t *testing.T) {
		pool := newFakePool()
		load(pool)
		ctx := browsertest.Tab(t, b)
		url := gateway(t, pool, nil)
		browsertest.Do(t, ctx, chromedp.Navigate(url+"/"))
		browsertest.Until(t, ctx, "rows", browsertest.RowsJS+` === 4 && document.querySelector('tr[data-key="3"]').dataset.state === 'disabled'`)
		// Open to all, the page asks for a token only as the admin's.
		browsertest.Do(t, ctx, chromedp.Click(chromedp.CSS("#signin")))
		browsertest.Login(t, ctx, adminTok)
		browsertest.Until(t, ctx, "admin buttons", `document.querySelectorAll('button[data-action]').length === 8 && !document.getElementById('reload').hidden`)
		browsertest.Screenshot(t, ctx, "status-page.png")
		// A phone: rows become cards with a label per line.
		browsertest.Do(t, ctx, chromedp.EmulateViewport(390, 844))
		browsertest.Until(t, ctx, "cards on a phone", `getComputedStyle(document.querySelector('#keys thead')).display === 'none' && getComputedStyle(document.querySelector('#keys tbody tr')).display === 'block'`)
		browsertest.Screenshot(t, ctx, "status-page-phone.png")
	})
}

// load gives the pool the look of a busy gateway: calls in flight, a key
// resting, one on trial, one disabled by hand.
func load(p *fakePool) {
	p.set(1, func(k *Key) { k.Calls, k.InFlight = 18234, 7 })
	p.set(2, func(k *Key) {
		k.State, k.RestReason, k.RestLeft, k.Calls = StateResting, "rate_limit (429)", Seconds(27*time.Second), 15012
		k.Failures = map[string]uint64{"account": 12, "upstream": 3}
	})
	p.set(3, func(k *Key) { k.State, k.Disabled, k.Calls = StateDisabled, true, 9921 })
	p.set(4, func(k *Key) {
		k.State, k.RestReason, k.Calls = StateTrial, "auth (401)", 310
		k.Failures = map[string]uint64{"key": 4}
	})
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
