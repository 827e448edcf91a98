//go:build race

package main_test

// Under go test -race the plugin is built with -race too, so that its races
// show when age drives it.
func init() { raceBuild = true }
