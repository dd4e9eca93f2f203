package config

import (
	"bufio"
	"os"
	"reflect"
	"strings"
	"testing"
)

// exampleSettings reads .env.example's setting lines, commented ("# NAME=v",
// a default shown) or not, as name → value.
func exampleSettings(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimPrefix(strings.TrimPrefix(sc.Text(), "#"), " ")
		name, value, ok := strings.Cut(line, "=")
		if !ok || name == "" || strings.Trim(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != "" {
			continue
		}
		out[name] = value
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEnvExampleListsEverySetting: .env.example is where a user of the
// compose stack sets keygate up, so every setting is in it, its default
// (where it has one) as keygate has it, and each line uncommented is one
// keygate starts with. It used to lack twelve, ADMIN_TOKEN and REDIS_URL
// among them.
func TestEnvExampleListsEverySetting(t *testing.T) {
	ex := exampleSettings(t)
	typ := reflect.TypeOf(Config{})
	names := map[string]bool{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		name := f.Tag.Get("env")
		if name == "" || name == "-" {
			continue
		}
		names[name] = true
		value, ok := ex[name]
		if !ok {
			t.Errorf("%s is not in .env.example", name)
			continue
		}
		if def, has := f.Tag.Lookup("envDefault"); has && value != def {
			t.Errorf(".env.example shows %s=%s, its default is %s", name, value, def)
		}
		if _, err := Load(nil, map[string]string{"OPENROUTER_API_KEY_1": testKey("1"), name: value}, true); err != nil {
			t.Errorf("%s=%s, as .env.example shows it, is refused: %v", name, value, err)
		}
	}
	for name := range ex {
		switch {
		case names[name], name == "OPENROUTER_API_KEYS", strings.HasPrefix(name, "OPENROUTER_API_KEY_"),
			name == "GRAFANA_ADMIN_PASSWORD":
		default:
			t.Errorf(".env.example shows %s, which keygate does not read", name)
		}
	}
}
