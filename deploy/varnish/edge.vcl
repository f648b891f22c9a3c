# cdnrefresh edge cache for Varnish 7 with varnish-modules (vmods purge and xkey).
# Placeholders: @ORIGIN_HOST@, @ORIGIN_PORT@ (the backend). The tests and the demo run this file.
#
# What the agent (--cache varnish) sends, all from 127.0.0.1 with the URL's Host header:
#   PURGE /path                          remove one URL            (purge.hard)
#   PURGE /path + X-Purge-Mode: soft     mark one URL stale        (purge.soft: kept for grace)
#   BAN / + X-Ban-Url: "<PCRE2 regex>"   remove every object whose URL matches (prefix, regex)
#   PURGE / + xkey-purge: TAG            remove every object tagged TAG          (xkey)
#   PURGE / + xkey-softpurge: TAG        mark every object tagged TAG stale      (xkey)
# Each answers 200 when done; a refused ban answers 400 with Varnish's reason.
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

sub cdnrefresh_recv {
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
        return (synth(200, "purged"));
    }
}

sub vcl_recv {
    call cdnrefresh_recv;  # cdnrefresh: purge, ban and xkey requests
}

sub vcl_hit {
    call cdnrefresh_purge_found;  # cdnrefresh
}

sub vcl_miss {
    call cdnrefresh_purge_found;  # cdnrefresh
}

sub vcl_backend_response {
    # cdnrefresh: the URL bans match against, as the API names it (scheme://host/path).
    set beresp.http.X-Cdr-Url = "http://" + bereq.http.host + bereq.url;
    if (bereq.http.X-Forwarded-Proto == "https") {
        set beresp.http.X-Cdr-Url = "https://" + bereq.http.host + bereq.url;
    }
    # cdnrefresh: tags from the origin's Surrogate-Key header (space-separated), indexed by xkey.
    if (beresp.http.Surrogate-Key) {
        set beresp.http.xkey = beresp.http.Surrogate-Key;
    }
    # Keep soft-purged objects long enough to be served while they revalidate.
    set beresp.grace = 1h;
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
