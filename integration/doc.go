// Package integration holds the end-to-end tests and the local stack: an
// embedded Kafka-protocol broker (broker), a Lambda Runtime API
// (runtimeapi), and the real lambda binary run under them.
package integration
