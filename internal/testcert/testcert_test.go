package testcert

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"testing"
)

// The certificate serves TLS on 127.0.0.1 to a client trusting only Pool,
// and its PEM forms are the same certificate and a key that matches it.
func TestNew(t *testing.T) {
	c, err := New("testcert")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.TLS.Leaf.Verify(x509.VerifyOptions{DNSName: "127.0.0.1", Roots: c.Pool}); err != nil {
		t.Fatalf("not valid for 127.0.0.1 against its own pool: %v", err)
	}
	if b, _ := pem.Decode(c.CertPEM); b == nil || string(b.Bytes) != string(c.TLS.Certificate[0]) {
		t.Fatal("CertPEM is not the certificate")
	}
	if _, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM); err != nil {
		t.Fatalf("KeyPEM does not match CertPEM: %v", err)
	}
}
