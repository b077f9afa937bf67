package main

import (
	"errors"
	"fmt"
	"net"
	"syscall"
)

// listenFlag opens a TCP listener on the address a flag gave. A failure
// names the flag (and the configuration key) to change, so that two
// processes on one host with the same default port know what to do.
func listenFlag(addr, flagName, key string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("listen on %s: the address is in use by another process: choose another with -%s (%s in the --config file): %w",
			addr, flagName, key, err)
	}
	return nil, fmt.Errorf("listen on %s (-%s, %s in the --config file): %w", addr, flagName, key, err)
}

// checkListenFlag reports, as listenFlag does, whether the address a flag
// gave can be listened on, for a server that opens its own listener (the
// in-process NATS server). A port of -1 or 0 is always free.
func checkListenFlag(addr, flagName, key string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "-1" || port == "0" {
		return nil
	}
	ln, err := listenFlag(addr, flagName, key)
	if err != nil {
		return err
	}
	return ln.Close()
}
