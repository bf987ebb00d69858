//go:build race

package deploy

// raceEnabled says whether this test binary was built with -race, so that
// TestManifests runs the nested module's tests the same way.
const raceEnabled = true
