// Package config is the configuration of the vexil binary's subcommands
// (serve, precompute, admin): one Config, from which each subcommand builds
// its components' own Configs (evalsvc, precompute, pebblestore,
// scyllastore, admin).
//
// # Sources
//
// Default gives the documented defaults; Load (the --config flag) reads a
// YAML file over them, refusing a key that no setting has with an
// *UnknownKeyError; the command line then overrides what the file says.
// Only cmd/vexil reads files and flags.
//
// # Validation
//
// Validate checks every setting, each within bounds, and returns one
// *FieldError per setting at fault, naming it by its file key
// (eval.store-timeout).
package config
