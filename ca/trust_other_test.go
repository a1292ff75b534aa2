//go:build !linux && !windows && !darwin

package ca

import "testing"

func emptySystemEnv() systemEnv { return systemEnv{} }

func systemSkipTests(*testing.T) []skipTest {
	return []skipTest{{"system/unsupported", StoreSystem, nil, "knows no system store", ErrNoSystemStore}}
}
