package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/vexil-dev/vexil/admin"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

func init() {
	register(&command{
		name:    "import",
		summary: "import a team's flags and cohorts from PostHog's definitions (management API)",
		run:     runImport,
	})
}

// maxImportFile bounds the definitions file read.
const maxImportFile = 64 << 20

func runImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("import", stderr)
	file := fs.String("file", "", `definitions: PostHog's local-evaluation payload or {"flags": [...], "cohorts": [...]}; "-" reads stdin`)
	team := fs.Int64("team", 0, "the team (project) to import into")
	addr := fs.String("grpc-addr", "127.0.0.1:8001", "the management API's gRPC address (vexil serve or vexil admin)")
	key := fs.String("key", "", "personal API key (phx_...); default $VEXIL_API_KEY")
	dryRun := fs.Bool("dry-run", false, "report what would be created, changed or refused; write nothing")
	asJSON := fs.Bool("json", false, "print the whole answer as JSON")
	timeout := fs.Duration("timeout", time.Minute, "how long the import may take")
	tlsFlags := bindClientTLSFlags(fs, true)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: vexil import --file FILE --team N [--dry-run] [--grpc-addr ADDR] [--key phx_...]")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "Loads a team's whole definitions at once through the management API")
		fmt.Fprintln(stderr, "(ImportDefinitions): flags in any order, cohort ids remapped, group types")
		fmt.Fprintln(stderr, "created. Without --dry-run everything is written or nothing is.")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *file == "" || *team <= 0 {
		return &usageError{msg: "--file and --team are required"}
	}
	if fs.NArg() > 0 {
		return &usageError{msg: fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	if *key == "" {
		*key = os.Getenv("VEXIL_API_KEY")
	}
	if *key == "" {
		return &usageError{msg: "a personal API key is required: --key or $VEXIL_API_KEY"}
	}
	in := io.Reader(os.Stdin)
	if *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	data, err := io.ReadAll(io.LimitReader(in, maxImportFile+1))
	if err != nil {
		return err
	}
	if len(data) > maxImportFile {
		return fmt.Errorf("%s is over %d bytes", *file, maxImportFile)
	}
	defs, err := admin.DefinitionsStruct(data)
	if err != nil {
		return fmt.Errorf("%s: %w", *file, err)
	}
	creds, err := tlsFlags.grpcCredentials()
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(*addr, creds,
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(maxImportFile), grpc.MaxCallRecvMsgSize(maxImportFile)))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+*key)
	resp, err := adminv1.NewAdminServiceClient(conn).ImportDefinitions(ctx, &adminv1.ImportDefinitionsRequest{
		TeamId: *team, Definitions: defs, DryRun: *dryRun})
	if err != nil {
		return err
	}
	if *asJSON {
		b, err := protojson.MarshalOptions{UseProtoNames: true, Multiline: true}.Marshal(resp)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(stdout, string(b))
		return err
	}
	return printImport(stdout, resp)
}

// printImport writes an import's report, one line per item.
func printImport(w io.Writer, r *adminv1.ImportDefinitionsResponse) error {
	for _, g := range r.GetGroupTypesCreated() {
		fmt.Fprintf(w, "group type %d %q: create\n", g.GetGroupTypeIndex(), g.GetGroupType())
	}
	for _, it := range r.GetItems() {
		id := ""
		if it.GetId() != 0 {
			id = fmt.Sprintf(" (id %d)", it.GetId())
		}
		fmt.Fprintf(w, "%-6s %-40s %s%s\n", it.GetKind(), it.GetKey(), it.GetAction(), id)
		for _, e := range it.GetErrors() {
			fmt.Fprintf(w, "       refused: %s: %s (%s)\n", e.GetField(), e.GetMessage(), e.GetCode())
		}
		for _, e := range it.GetWarnings() {
			fmt.Fprintf(w, "       warning: %s: %s (%s)\n", e.GetField(), e.GetMessage(), e.GetCode())
		}
		// How each filter of a cohort runs; the refused ones are listed above.
		for _, f := range it.GetFilters() {
			if f.GetMode() != "refused" {
				fmt.Fprintf(w, "       %s: %s: %s\n", f.GetMode(), f.GetField(), f.GetMessage())
			}
		}
	}
	state := "applied"
	if r.GetDryRun() {
		state = "dry run, nothing written"
	}
	fmt.Fprintf(w, "%d to create, %d to change, %d unchanged, %d refused: %s\n",
		r.GetCreated(), r.GetChanged(), r.GetUnchanged(), r.GetRefused(), state)
	if r.GetRefused() > 0 {
		return fmt.Errorf("%d definitions are refused", r.GetRefused())
	}
	return nil
}
