package ca

import (
	"errors"
	"testing"
)

// untouchableRoots fails every call: the tests here never touch the real
// ROOT stores.
type untouchableRoots struct{}

var errUntouchable = errors.New("system store must not be touched")

func (untouchableRoots) has(rootLocation, []byte) (bool, error) { return false, errUntouchable }
func (untouchableRoots) add(rootLocation, []byte) error         { return errUntouchable }
func (untouchableRoots) remove(rootLocation, []byte) error      { return errUntouchable }

func emptySystemEnv() systemEnv { return systemEnv{api: untouchableRoots{}} }

func systemSkipTests(*testing.T) []skipTest {
	return []skipTest{{"system/unreadable", StoreSystem, nil, "must not be touched", nil}}
}
