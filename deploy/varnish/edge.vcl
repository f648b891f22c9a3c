# cdnrefresh edge cache for Varnish 7 with varnish-modules (vmods purge and xkey).
# Placeholders: @ORIGIN_HOST@, @ORIGIN_PORT@ (the backend). The tests and the demo run this file.
#
# What the agent (--cache varnish) sends, all from 127.0.0.1 with the URL's Host header:
#   PURGE /path                          remove one URL            (purge.hard)
#   PURGE /path + X-Purge-Mode: soft     mark one URL stale        (purge.soft: kept for grace)
#                                        then look the URL up again: X-Cache-Status says what the
#                                        cache holds now (MISS, STALE or HIT)
#   BAN / + X-Ban-Url: "<PCRE2 regex>"   remove every object whose URL matches (prefix, regex)
#   PURGE / + xkey-purge: TAG            remove every object tagged TAG          (xkey)
#   PURGE / + xkey-softpurge: TAG        mark every object tagged TAG stale      (xkey)
#   GET /path + X-Cdr-Probe: 1           what the cache holds, never fetching: 200 cached,
#                                        299 stale (kept for grace), 404 not cached
# Each answers 200 when done; a refused ban answers 400 with Varnish's reason. The agent reports a
# PURGE done only when the lookup after it found the URL gone (or stale, for a soft purge).
#
# Keys: Varnish hashes the URL as sent (never decoded) and the Host header. vcl_recv first
# normalises Host (lower case, no :80 or :443, no trailing dot), so "H", "h:80" and "h." are one
# object, the one the agent's purges name. Vary variants of an object are purged together.
# Tags over 8 KB: run varnishd with -p http_resp_hdr_len=65536 -p http_resp_size=98304
# -p workspace_backend=131072 (its defaults refuse a response header longer than 8 KB).
#
# Merging into an existing VCL: copy the imports, the acl, the cdnrefresh_* subroutines and the
# calls to them (marked "cdnrefresh:") into your own vcl_recv, vcl_hit, vcl_miss,
# vcl_backend_response and vcl_deliver, before your own logic. Keep X-Cdr-Url: bans match it, and
# matching a stored header lets the ban lurker evict in the background. If you change vcl_hash,
# keep the URL and the Host in the hash, or exact purges will miss.
vcl 4.1;

import purge;
import std;
import xkey;

backend origin {
    .host = "@ORIGIN_HOST@";
    .port = "@ORIGIN_PORT@";
}

# Who may purge: the agent runs on the same host.
acl cdnrefresh_purgers {
    "127.0.0.1";
    "::1";
}

# One object per host however a visitor spells it: the form the agent's URLs use.
sub cdnrefresh_normalize_host {
    if (req.http.host) {
        set req.http.host = std.tolower(regsub(req.http.host, "\.*(:(80|443))?$", ""));
    }
}

sub cdnrefresh_recv {
    if (req.restarts == 0) {
        unset req.http.X-Cdr-Found;  # set by a probe, never by a client
    }
    if (req.http.X-Cdr-Probe) {
        if (client.ip ~ cdnrefresh_purgers && req.method == "GET") {
            return (hash);  # answered in vcl_hit or vcl_miss, never from the origin
        }
        unset req.http.X-Cdr-Probe;
    }
    if (req.method != "PURGE" && req.method != "BAN") {
        return;
    }
    if (client.ip !~ cdnrefresh_purgers) {
        return (synth(403, "purging not allowed from this address"));
    }
    if (req.method == "BAN") {
        if (!req.http.X-Ban-Url) {
            return (synth(400, "BAN needs X-Ban-Url"));
        }
        # The value is a quoted ban argument; obj.http.* lets the ban lurker do the work.
        if (std.ban("obj.http.X-Cdr-Url ~ " + req.http.X-Ban-Url)) {
            return (synth(200, "banned"));
        }
        return (synth(400, std.ban_error()));
    }
    if (req.http.xkey-purge) {
        return (synth(200, "purged " + xkey.purge(req.http.xkey-purge)));
    }
    if (req.http.xkey-softpurge) {
        return (synth(200, "soft-purged " + xkey.softpurge(req.http.xkey-softpurge)));
    }
    # One URL: look it up so vcl_hit / vcl_miss can purge every variant of it.
    return (hash);
}

sub cdnrefresh_purge_found {
    if (req.method == "PURGE") {
        if (req.http.X-Purge-Mode == "soft") {
            purge.soft(0s);
        } else {
            purge.hard();
        }
        # Look the URL up again, as a probe: the answer tells what the cache holds now.
        set req.method = "GET";
        set req.http.X-Cdr-Probe = "after-purge";
        return (restart);
    }
}

# The agent's probe of a URL: what the lookup found, without fetching or delivering it.
sub cdnrefresh_probe_found {
    if (req.http.X-Cdr-Probe) {
        # An object purged this very instant can still be looked up, its ttl and grace ending
        # now (a few microseconds may be left, as the lookup's clock is the request's): it is
        # gone. A copy that really stays has more than 10 ms left.
        if (obj.ttl > 0.01s) {
            set req.http.X-Cdr-Found = "HIT";
        } else if (obj.ttl + obj.grace > 0.01s) {
            set req.http.X-Cdr-Found = "STALE";
        } else {
            set req.http.X-Cdr-Found = "MISS";
        }
        call cdnrefresh_probe_answer;
    }
}

sub cdnrefresh_probe_missed {
    if (req.http.X-Cdr-Probe) {
        set req.http.X-Cdr-Found = "MISS";
        call cdnrefresh_probe_answer;
    }
}

# A PURGE's answer is 200 whatever the lookup after it found (X-Cache-Status tells); a probe's
# status is what it found.
sub cdnrefresh_probe_answer {
    if (req.http.X-Cdr-Probe == "after-purge") {
        return (synth(200, "purged"));
    }
    if (req.http.X-Cdr-Found == "HIT") {
        return (synth(200, "cached"));
    }
    if (req.http.X-Cdr-Found == "STALE") {
        return (synth(299, "stale"));
    }
    return (synth(404, "not cached"));
}

sub vcl_recv {
    call cdnrefresh_normalize_host;  # cdnrefresh: before anything reads the Host
    call cdnrefresh_recv;  # cdnrefresh: purge, ban and xkey requests
}

sub vcl_hit {
    call cdnrefresh_purge_found;  # cdnrefresh
    call cdnrefresh_probe_found;  # cdnrefresh
}

sub vcl_miss {
    call cdnrefresh_purge_found;  # cdnrefresh
    call cdnrefresh_probe_missed;  # cdnrefresh
}

sub vcl_backend_response {
    # cdnrefresh: the URL bans match against, as the API names it (scheme://host/path).
    set beresp.http.X-Cdr-Url = "http://" + bereq.http.host + bereq.url;
    if (bereq.http.X-Forwarded-Proto == "https") {
        set beresp.http.X-Cdr-Url = "https://" + bereq.http.host + bereq.url;
    }
    # cdnrefresh: tags from the origin's Surrogate-Key headers (space-separated, any number of
    # header lines), indexed by xkey.
    if (beresp.http.Surrogate-Key) {
        std.collect(beresp.http.Surrogate-Key, " ");
        set beresp.http.xkey = beresp.http.Surrogate-Key;
    }
    # Keep soft-purged objects long enough to be served while they revalidate.
    set beresp.grace = 1h;
}

sub vcl_synth {
    # cdnrefresh: what a probe (or the lookup after a PURGE) found.
    if (req.http.X-Cdr-Found) {
        set resp.http.X-Cache-Status = req.http.X-Cdr-Found;
    }
}

sub vcl_deliver {
    # cdnrefresh: HIT, STALE (served from grace while revalidating) or MISS, as nginx names them.
    if (obj.hits > 0) {
        if (obj.ttl <= 0s) {
            set resp.http.X-Cache-Status = "STALE";
        } else {
            set resp.http.X-Cache-Status = "HIT";
        }
    } else {
        set resp.http.X-Cache-Status = "MISS";
    }
    unset resp.http.X-Cdr-Url;
    unset resp.http.xkey;
}
