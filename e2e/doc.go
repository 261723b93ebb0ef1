// Package e2e owns cutover's end-to-end test: the built cutover binary moves a live lab mail
// relay from an OLD to a NEW SSH host (internal/lab) with BIND 9 primary and secondary, two
// Unbound caches and a sender delivering through a cache the whole time, and the test checks
// that nothing was lost, nothing arrived twice, DNS and the services ended where they should,
// including after a SIGKILL in the middle of the window and after a failed verify that rolls
// back. It has no non-test code.
package e2e
