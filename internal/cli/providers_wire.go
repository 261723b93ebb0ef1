package cli

import (
	"context"
	"errors"

	"github.com/cutover-dev/cutover/internal/config"
	"github.com/cutover-dev/cutover/scheduler"
)

// checkProvider validates a [providers.NAME] table offline.
// TODO(lead): replace with providers.Check once the providers package lands.
var checkProvider = func(ps *config.ProviderSettings) []config.Problem { return nil }

// providerInfo returns what the plan needs to know about the configured provider.
// TODO(lead): wire providers.Lookup.
func providerInfo(cfg *config.Config) (scheduler.ProviderInfo, error) {
	return scheduler.ProviderInfo{Type: cfg.Provider().Type}, nil
}

// observe asks the authoritative servers what they serve for the names.
// TODO(lead): wire dnsprop.Checker.Observe.
func observe(ctx context.Context, cfg *config.Config) (*scheduler.Facts, error) {
	return nil, errors.New("dns: not wired yet")
}
