package broker

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// PKI is a CA made for one test run, a broker certificate for 127.0.0.1
// signed by it, and a client certificate for mTLS; the CA and the client's
// certificate and key are written as PEM files in Dir.
type PKI struct {
	Dir             string
	CAFile          string
	ClientCertFile  string
	ClientKeyFile   string
	CA              *x509.CertPool
	Server          tls.Certificate
	ClientSubjectCN string
	UnknownCertFile string // a client certificate from another CA
	UnknownKeyFile  string
	OtherCAFile     string // a CA that signed neither the broker nor the client
}

// NewPKI makes the certificates in dir.
func NewPKI(dir string) (*PKI, error) {
	p := &PKI{Dir: dir, ClientSubjectCN: "relay-client"}
	ca, caKey, err := newCA("relay test CA")
	if err != nil {
		return nil, err
	}
	p.CA = x509.NewCertPool()
	p.CA.AddCert(ca)
	srvDER, srvKey, err := newLeaf(ca, caKey, "127.0.0.1", x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, err
	}
	p.Server = tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
	cliDER, cliKey, err := newLeaf(ca, caKey, p.ClientSubjectCN, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, err
	}
	other, otherKey, err := newCA("some other CA")
	if err != nil {
		return nil, err
	}
	strangerDER, strangerKey, err := newLeaf(other, otherKey, "stranger", x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, err
	}
	p.CAFile = filepath.Join(dir, "ca.pem")
	p.OtherCAFile = filepath.Join(dir, "other-ca.pem")
	p.ClientCertFile, p.ClientKeyFile = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	p.UnknownCertFile, p.UnknownKeyFile = filepath.Join(dir, "stranger.pem"), filepath.Join(dir, "stranger-key.pem")
	for _, f := range []struct {
		path string
		typ  string
		der  []byte
	}{
		{p.CAFile, "CERTIFICATE", ca.Raw},
		{p.OtherCAFile, "CERTIFICATE", other.Raw},
		{p.ClientCertFile, "CERTIFICATE", cliDER},
		{p.UnknownCertFile, "CERTIFICATE", strangerDER},
	} {
		if err := writePEM(f.path, f.typ, f.der); err != nil {
			return nil, err
		}
	}
	for path, key := range map[string]*ecdsa.PrivateKey{p.ClientKeyFile: cliKey, p.UnknownKeyFile: strangerKey} {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		if err := writePEM(path, "PRIVATE KEY", der); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// ServerTLS is the broker's TLS configuration; with clientAuth the broker
// demands a client certificate signed by the CA.
func (p *PKI) ServerTLS(clientAuth bool) *tls.Config {
	c := &tls.Config{Certificates: []tls.Certificate{p.Server}, MinVersion: tls.VersionTLS12}
	if clientAuth {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = p.CA
	}
	return c
}

func newCA(cn string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := template(cn)
	tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("make CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func newLeaf(ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := template(cn)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
	if ip := net.ParseIP(cn); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("make certificate for %s: %w", cn, err)
	}
	return der, key, nil
}

// template is a certificate for cn valid for this test run.
func template(cn string) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

// WriteServerPEM writes the broker's key (unencrypted PKCS#8) followed by
// its certificate chain to path, as a Kafka PEM keystore wants it.
func (p *PKI) WriteServerPEM(path string) error {
	der, err := x509.MarshalPKCS8PrivateKey(p.Server.PrivateKey)
	if err != nil {
		return err
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	for _, c := range p.Server.Certificate {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c})...)
	}
	return os.WriteFile(path, out, 0o600)
}
