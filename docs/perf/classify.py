# Classifies the samples of `perf script` output by component and SDK phase (docs/perf/profile.md).
# Usage: perf script -i perf.data > perf.script; python3 docs/perf/classify.py perf.script
import re, sys, collections
# Reads `perf script` output; prints where the samples go by component and, for SDK calls, by phase.
comp_rules = [
 ("envelope (zstd, base64, sha256 of payload)", r"ZSTD_|HUF_|FSE_|eda_core::envelope|EnvelopePacker"),
 ("SDK DynamoDB PutItem", r"aws_sdk_dynamodb|DynamoDbItemWriter"),
 ("SDK EventBridge PutEvents", r"aws_sdk_eventbridge|EventBridgeClient|eventbridge_publisher"),
 ("SDK SQS", r"aws_sdk_sqs"),
 ("SDK/HTTP, service not on the stack", r"aws_smithy|aws_sigv4|aws_runtime|hyper|h2::|aws_credential"),
 ("Kafka consume (rdkafka)", r"rdkafka|rd_kafka|librdkafka|rd_"),
 ("decode (Qlik JSON -> CdcEvent)", r"message_decoder|eda_core::cdc|eda_core::transform|qlik"),
 ("plan (apply plan, items)", r"apply_plan"),
 ("region router (routing, envelope entries)", r"region_router"),
 ("change events (entries, serde_json)", r"change_event|change_entry|into_base_event|serde_json"),
 ("cdc applier (other)", r"cdc_applier"),
 ("kafka actors (partition consumer, ack, commit)", r"eda_actors::kafka|eda_actors::ack"),
 ("metrics/tracing", r"tracing|prometheus|telemetry|metrics"),
 ("actors/mailboxes (ractor, tokio channels)", r"ractor|tokio::sync"),
 ("tokio runtime / scheduler", r"tokio::runtime|tokio::"),
]
phase_rules = [
 ("serialize request", r"serialize|escape_string|JsonValueWriter|to_sdk|ser_"),
 ("sign (SigV4, SHA-256)", r"aws_sigv4|sha2|hmac|Sign"),
 ("parse response", r"deser|deserialize|json::deserialize|parse_http_response|Deserializ"),
 ("HTTP (hyper, sockets)", r"hyper|tokio::net|\[k\]|writev|recv|sendto"),
 ("orchestrator, interceptors, config bag", r"."),
]
alloc_re = re.compile(r"\bmi_|_mi_|malloc|__rust_alloc|__rust_dealloc|realloc|\bfree\b|alloc::alloc")
copy_re = re.compile(r"memmove|memcpy|memset")
samples=[]; cur=None
for line in open(sys.argv[1], errors="replace"):
    if line and not line[0].isspace():
        cur=[]; samples.append(cur)
    elif line.strip() and cur is not None:
        parts=line.strip().split(None,1)
        if len(parts)==2:
            sym=parts[1]; sym=re.sub(r"\+0x[0-9a-f]+ \(.*\)$","",sym)
            if "[kernel" in parts[1]: sym="[k] "+sym
            cur.append(sym)
N=len(samples)
comp=collections.Counter(); phase=collections.Counter(); leafk=collections.Counter(); compalloc=collections.Counter()
for st in samples:
    if not st: continue
    joined="\n".join(st)
    c="other (kernel, libc, unattributed)"
    for name,pat in comp_rules:
        if re.search(pat, joined): c=name; break
    comp[c]+=1
    leaf=st[0]
    if alloc_re.search(leaf): leafk["allocation (mimalloc malloc/free)"]+=1; compalloc[c]+=1
    elif copy_re.search(leaf): leafk["memmove/memcpy"]+=1
    elif leaf.startswith("[k]"): leafk["kernel"]+=1
    else: leafk["other code"]+=1
    if c.startswith("SDK"):
        for name,pat in phase_rules:
            if re.search(pat, joined if name!="HTTP (hyper, sockets)" else "\n".join(st[:6])):
                phase[(c,name)]+=1; break
print(f"samples: {N}\n")
print("| component (inclusive, first match in this order) | share | of it in malloc/free |\n|---|---:|---:|")
for k,v in comp.most_common(): print(f"| {k} | {100*v/N:.1f} % | {100*compalloc[k]/N:.1f} % |")
print("\n| SDK call phase | share of all samples |\n|---|---:|")
for (c,p),v in sorted(phase.items(), key=lambda x:-x[1]): print(f"| {c}: {p} | {100*v/N:.1f} % |")
print("\n| leaf frame kind | share |\n|---|---:|")
for k,v in leafk.most_common(): print(f"| {k} | {100*v/N:.1f} % |")
