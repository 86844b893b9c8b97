# telemetry_doc VARIANT: print the Istio Telemetry document of a benchmark variant, if it has one
# (sourced by proxy_bench.sh and proxy_callgrind.sh):
#   P-trim    REMOVEs the 16 workload and principal labels from every metric, as users cut cardinality;
#   P-upsert  UPSERTs request_host and a header-valued user_agent tag, evaluated per request on the worker.
telemetry_doc() {
    local l
    case $1 in
    *-trim)
        printf '%s\n' '---' 'apiVersion: telemetry.istio.io/v1' 'kind: Telemetry' \
            'metadata: {name: trim, namespace: istio-system}' 'spec:' '  metrics:' '  - overrides:' \
            '    - tagOverrides:'
        for l in source_workload source_workload_namespace source_principal source_app source_version \
            source_canonical_service source_canonical_revision source_cluster destination_workload \
            destination_workload_namespace destination_principal destination_app destination_version \
            destination_canonical_service destination_canonical_revision destination_cluster; do
            echo "        $l: {operation: REMOVE}"
        done
        ;;
    *-upsert)
        printf '%s\n' '---' 'apiVersion: telemetry.istio.io/v1' 'kind: Telemetry' \
            'metadata: {name: upsert, namespace: istio-system}' 'spec:' '  metrics:' '  - overrides:' \
            '    - tagOverrides:' '        request_host: {value: request.host}' \
            "        user_agent: {value: \"request.headers['user-agent']\"}"
        ;;
    esac
}
