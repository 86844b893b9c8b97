# jq helpers shared by the compat scripts (jq -L tests/compat 'include "zipkin"; ...').

# What a Zipkin server returns for a span it was sent: span and service names
# lowercased, annotations in timestamp order, empty or false fields dropped.
def zipkin_endpoint:
  if . == null then null
  else (if .serviceName then .serviceName |= ascii_downcase else . end)
       | with_entries(select(.value != null and .value != ""))
       | if . == {} then null else . end
  end;

def zipkin_expected:
  (if .name then .name |= ascii_downcase else . end)
  | .localEndpoint |= zipkin_endpoint
  | .remoteEndpoint |= zipkin_endpoint
  | (if .annotations then .annotations |= sort_by(.timestamp, .value) else . end)
  | with_entries(select(.value != null and .value != "" and .value != false
                        and .value != [] and .value != {}));

# A stable order for the spans of a trace (the API does not promise one).
def zipkin_sorted:
  sort_by(.id, (.kind // ""), (.shared // false), (.parentId // ""));
