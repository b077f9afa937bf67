// Package evalv1 is the generated Go code of the evaluation API
// (eval.proto): EvalService for internal services, and its grpc-gateway
// handler for POST /api/evaluate (eval_http.yaml). Package evalsvc
// implements the service.
package evalv1
