/* canary-stt models: pull, list, rm and path for the model cache (hub/hub.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/strbuf.h"
#include "cli/cli.h"
#include "hub/hub.h"

static void usage(void) {
    printf("Usage: canary-stt models <pull|list|rm|path> [NAME] [options]\n\n"
           "  pull NAME   download a model from the Hugging Face hub into the cache and verify it\n"
           "              (NAME: nvidia/canary-180m-flash, nvidia/canary-1b-flash, nvidia/canary-1b-v2,\n"
           "              nvidia/canary-1b, or org/name@revision)\n"
           "  list        show cached models with sizes (--json for JSON)\n"
           "  rm NAME     remove a model from the cache\n"
           "  path MODEL  print the local path --model MODEL resolves to (pulling it if needed)\n\n"
           "Environment: HF_ENDPOINT (hub or mirror URL), HF_TOKEN (access token for gated/private\n"
           "repositories), HF_HUB_OFFLINE=1 (never use the network), https_proxy / no_proxy.\n"
           "The cache is --cache-dir, else $XDG_CACHE_HOME/canary-stt, else ~/.cache/canary-stt.\n\n");
}

int cmd_models(int argc, char **argv) {
    static const cn_opt opts[] = {
        {"json", false, "list: print JSON"},
        {"revision", true, "pull: branch, tag or commit (default main)"},
        {"offline", false, "use only the cache (same as HF_HUB_OFFLINE=1)"},
        {"retries", true, "pull: resumptions after a broken transfer (default 5)"},
        {"quiet", false, "pull: no progress bar"},
        {0}};
    cn_config cfg;
    cn_cli_parsed p;
    int start_rc = cn_cli_start("models", argc, argv, opts, &cfg, &p);
    if (start_rc)
        return start_rc;
    cn_error err;
    cn_error_clear(&err);
    int rc = 0;
    if (p.help || p.n_pos == 0) {
        usage();
        cn_cli_print_opts(opts);
        rc = p.help ? 0 : 2;
        goto out;
    }
    if (cn_cli_setup_logging(&cfg, &err)) {
        fprintf(stderr, "canary-stt models: %s\n", err.msg);
        rc = 2;
        goto out;
    }
    cn_hub_opts ho;
    cn_hub_opts_from_config(&ho, &cfg);
    ho.revision = p.values[1];
    if (p.values[2])
        ho.offline = 1;
    if (p.values[3]) {
        char *end;
        long r = strtol(p.values[3], &end, 10);
        if (*end || r < 0 || r > 100) {
            fprintf(stderr, "canary-stt models: --retries '%s' is not a number in 0..100\n", p.values[3]);
            rc = 2;
            goto out;
        }
        ho.retries = (int)r;
    }
    ho.progress = p.values[4] == NULL;
    const char *sub = p.pos[0];
    bool needs_name = strcmp(sub, "pull") == 0 || strcmp(sub, "rm") == 0 || strcmp(sub, "path") == 0;
    if (needs_name && p.n_pos != 2) {
        fprintf(stderr, "canary-stt models %s: needs exactly one model name\n", sub);
        rc = 2;
        goto out;
    }
    if ((strcmp(sub, "pull") == 0 || strcmp(sub, "rm") == 0) && !cn_hub_is_repo_name(p.pos[1])) {
        fprintf(stderr, "canary-stt models %s: '%s' is not a hub repository name (org/name[@revision])\n", sub,
                p.pos[1]);
        rc = 2;
        goto out;
    }
    if (strcmp(sub, "pull") == 0) {
        char *path = NULL;
        if (cn_hub_pull(&ho, p.pos[1], &path, &err)) {
            fprintf(stderr, "canary-stt models pull: %s\n", err.msg);
            rc = 1;
        } else {
            printf("%s\n", path);
        }
        free(path);
    } else if (strcmp(sub, "path") == 0) {
        char *path = NULL;
        if (cn_hub_resolve_model(p.pos[1], &ho, &path, &err)) {
            fprintf(stderr, "canary-stt models path: %s\n", err.msg);
            rc = 1;
        } else {
            printf("%s\n", path);
        }
        free(path);
    } else if (strcmp(sub, "rm") == 0) {
        if (cn_hub_remove(&ho, p.pos[1], &err)) {
            fprintf(stderr, "canary-stt models rm: %s\n", err.msg);
            rc = 1;
        } else {
            printf("removed %s\n", p.pos[1]);
        }
    } else if (strcmp(sub, "list") == 0) {
        cn_hub_cached *list = NULL;
        size_t n = 0;
        char cache[4096];
        if (cn_hub_cache_dir(&ho, cache, sizeof cache, &err) || cn_hub_list(&ho, &list, &n, &err)) {
            fprintf(stderr, "canary-stt models list: %s\n", err.msg);
            rc = 1;
            goto out;
        }
        cn_strbuf sb;
        cn_sb_init(&sb);
        if (p.values[0]) {
            cn_sb_puts(&sb, "{\"cache_dir\":");
            cn_sb_json_string(&sb, cache);
            cn_sb_puts(&sb, ",\"models\":[");
            for (size_t i = 0; i < n; i++) {
                cn_sb_puts(&sb, i ? ",{\"name\":" : "{\"name\":");
                cn_sb_json_string(&sb, list[i].repo);
                cn_sb_puts(&sb, ",\"revision\":");
                cn_sb_json_string(&sb, list[i].revision);
                cn_sb_puts(&sb, ",\"commit\":");
                cn_sb_json_string(&sb, list[i].commit);
                cn_sb_puts(&sb, ",\"file\":");
                cn_sb_json_string(&sb, list[i].file);
                cn_sb_puts(&sb, ",\"path\":");
                cn_sb_json_string(&sb, list[i].path);
                cn_sb_printf(&sb, ",\"size_bytes\":%llu,\"complete\":%s}", (unsigned long long)list[i].size,
                             list[i].complete ? "true" : "false");
            }
            cn_sb_puts(&sb, "]}\n");
        } else {
            cn_sb_printf(&sb, "Model cache: %s\n", cache);
            if (n == 0)
                cn_sb_puts(&sb, "  (empty)\n");
            for (size_t i = 0; i < n; i++) {
                if (list[i].complete)
                    cn_sb_printf(&sb, "  %-32s %9.1f MiB  %s@%.12s  %s\n", list[i].repo,
                                 (double)list[i].size / 1048576.0, list[i].revision, list[i].commit, list[i].file);
                else
                    cn_sb_printf(&sb, "  %-32s %9.1f MiB  partial download (`models pull` resumes it)\n",
                                 list[i].repo, (double)list[i].size / 1048576.0);
            }
        }
        fputs(cn_sb_str(&sb), stdout);
        cn_sb_free(&sb);
        free(list);
    } else {
        fprintf(stderr, "canary-stt models: unknown subcommand '%s' (pull, list, rm, path)\n", sub);
        rc = 2;
    }
out:
    cn_config_free(&cfg);
    return rc;
}
