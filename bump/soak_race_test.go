//go:build race

package bump

// raceEnabled reports a -race build, where the soak test scales down.
const raceEnabled = true
