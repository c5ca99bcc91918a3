/* canary-stt hwinfo: what was detected, the profile chosen and why; --check: the device self-test. */
#include <stdio.h>
#include <string.h>

#include "base/strbuf.h"
#include "cli/cli.h"
#include "hw/check.h"
#include "hw/hw.h"
#include "hw/profile.h"

/* The model-level part of --check needs the engine's device selection (not in this build). */
static const char model_check_missing[] =
    "not available yet: loading a tiny model on every device and comparing one batch with the CPU needs the "
    "engine's device selection and CUDA backend";

static int run_check(const cn_hw_info *hw, bool json) {
    cn_strbuf sb;
    cn_sb_init(&sb);
    int failures = 0;
    if (json)
        cn_sb_puts(&sb, "{\"checks\":[");
    for (int i = 0; i < hw->n_gpus; i++) {
        /* a quarter of the free memory, at most 256 MiB: enough to touch many DRAM pages quickly */
        uint64_t mem = hw->gpus[i].free_mem / 4;
        if (mem > (256u << 20))
            mem = 256u << 20;
        cn_hw_check_result r;
        cn_error err;
        cn_error_clear(&err);
        cn_hw_check_gpu(hw, i, mem, &r, &err);
        failures += !r.ok;
        if (json) {
            cn_sb_puts(&sb, i ? ",{\"device\":" : "{\"device\":");
            cn_sb_json_string(&sb, r.device);
            cn_sb_puts(&sb, ",\"name\":");
            cn_sb_json_string(&sb, hw->gpus[i].name);
            cn_sb_printf(&sb, ",\"ok\":%s,\"max_error\":%.3g,\"message\":", r.ok ? "true" : "false", r.max_err);
            cn_sb_json_string(&sb, r.msg);
            cn_sb_putc(&sb, '}');
        } else {
            cn_sb_printf(&sb, "%-7s %s: %s: %s\n", r.device, hw->gpus[i].name, r.ok ? "ok" : "FAILED", r.msg);
        }
    }
    if (json) {
        cn_sb_puts(&sb, "],\"gpu_note\":");
        cn_sb_json_string(&sb, hw->n_gpus ? "" : hw->gpu_note);
        cn_sb_printf(&sb, ",\"failures\":%d,\"model_check\":", failures);
        cn_sb_json_string(&sb, model_check_missing);
        cn_sb_puts(&sb, "}\n");
    } else {
        if (hw->n_gpus == 0)
            cn_sb_printf(&sb, "No GPU to check (%s); the CPU is the reference.\n", hw->gpu_note);
        cn_sb_printf(&sb, "Model check: %s.\n", model_check_missing);
        cn_sb_printf(&sb, "%d of %d device(s) failed.\n", failures, hw->n_gpus);
    }
    fputs(cn_sb_str(&sb), stdout);
    cn_sb_free(&sb);
    return failures ? 1 : 0;
}

int cmd_hwinfo(int argc, char **argv) {
    static const cn_opt opts[] = {
        {"json", false, "print JSON (schema in docs/HARDWARE.md)"},
        {"check", false, "self-test every GPU against the CPU (memory pattern + fp32 GEMM); exit 1 on a mismatch"},
        {"for-model", true, "size the profile for this model: canary-1b, canary-1b-flash, canary-180m-flash, "
                            "canary-1b-v2 (default: the configured model)"},
        {"root", true, "read /proc, /sys and /etc under this directory instead (for tests)"},
        {0}};
    cn_config cfg;
    cn_cli_parsed p;
    int start_rc = cn_cli_start("hwinfo", argc, argv, opts, &cfg, &p);
    if (start_rc)
        return start_rc;
    cn_error err;
    cn_error_clear(&err);
    int rc = 0;
    if (p.help) {
        printf("Usage: canary-stt hwinfo [--json] [--check] [--for-model NAME]\n\n"
               "Shows the detected CPU, memory, container limits and GPUs, and the configuration chosen for\n"
               "them (workers, batch, chunk length, precision, memory budgets) with the reason for each value.\n"
               "The engine.* settings and --workers override the automatic choices.\n\n");
        cn_cli_print_opts(opts);
        goto out;
    }
    if (p.n_pos > 0) {
        fprintf(stderr, "canary-stt hwinfo: unexpected argument '%s'\n", p.pos[0]);
        rc = 2;
        goto out;
    }
    if (cn_cli_setup_logging(&cfg, &err)) {
        fprintf(stderr, "canary-stt hwinfo: %s\n", err.msg);
        rc = 2;
        goto out;
    }
    cn_hw_detect_opts dopts = {p.values[3] ? p.values[3] : "/", p.values[3] == NULL, p.values[3] == NULL};
    cn_hw_info hw;
    cn_hw_detect(&dopts, &hw);
    if (p.values[1]) {
        rc = run_check(&hw, p.values[0] != NULL);
        goto out;
    }

    const char *model_name = p.values[2] ? p.values[2] : cfg.model;
    const cn_hw_model *model = cn_hw_model_preset(model_name);
    char model_note[256] = "";
    if (!model) {
        /* a local .nemo: its dimensions come from the loader once it lands; size for the default */
        snprintf(model_note, sizeof model_note,
                 "'%s' is not one of the published Canary names; profile sized for canary-180m-flash", model_name);
        model = cn_hw_model_preset("canary-180m-flash");
    }
    cn_profile prof;
    cn_status st = cn_profile_compute(&hw, model, &cfg, &prof, &err);
    cn_strbuf sb;
    cn_sb_init(&sb);
    if (p.values[0]) {
        cn_sb_puts(&sb, "{\"hardware\":");
        cn_hw_info_json(&hw, &sb);
        cn_sb_puts(&sb, ",\"profile\":");
        if (st == CANARY_OK)
            cn_profile_json(&prof, &sb);
        else
            cn_sb_puts(&sb, "null");
        cn_sb_puts(&sb, ",\"error\":");
        cn_sb_json_string(&sb, st == CANARY_OK ? "" : err.msg);
        cn_sb_puts(&sb, ",\"model_note\":");
        cn_sb_json_string(&sb, model_note);
        cn_sb_puts(&sb, "}\n");
    } else {
        cn_sb_printf(&sb, "CPU      %s (%s), %d physical / %d logical cores", hw.cpu_model[0] ? hw.cpu_model : "unknown",
                     hw.arch, hw.physical_cores, hw.logical_cores);
        cn_sb_printf(&sb, "\n         features:%s%s%s%s%s%s%s\n", hw.avx2 ? " avx2" : "", hw.fma ? " fma" : "",
                     hw.avx512f ? " avx512f" : "", hw.avx512bf16 ? " avx512_bf16" : "",
                     hw.amx_bf16 ? (hw.amx_usable ? " amx_bf16" : " amx_bf16(not permitted)") : "",
                     hw.neon ? " neon" : "", hw.arm_bf16 ? " bf16" : "");
        cn_sb_printf(&sb, "Memory   %.1f GiB total, %.1f GiB available\n", (double)hw.mem_total / (1 << 30),
                     (double)hw.mem_available / (1 << 30));
        if (hw.cgroup_version) {
            cn_sb_printf(&sb, "cgroup   v%d: CPU quota ", hw.cgroup_version);
            if (hw.cgroup_cpus > 0)
                cn_sb_printf(&sb, "%.2f CPUs", hw.cgroup_cpus);
            else
                cn_sb_puts(&sb, "none");
            if (hw.cgroup_mem_limit)
                cn_sb_printf(&sb, ", memory limit %.1f GiB\n", (double)hw.cgroup_mem_limit / (1 << 30));
            else
                cn_sb_puts(&sb, ", memory limit none\n");
        }
        if (hw.jetson)
            cn_sb_printf(&sb, "Jetson   %s (unified memory)\n", hw.jetson_model);
        if (hw.n_gpus == 0)
            cn_sb_printf(&sb, "GPUs     none (%s)\n", hw.gpu_note);
        for (int i = 0; i < hw.n_gpus; i++) {
            const cn_hw_gpu *g = &hw.gpus[i];
            cn_sb_printf(&sb, "GPU %d    %s, sm%d%d, %.1f / %.1f GiB free, %s%s", g->index, g->name, g->cc_major,
                         g->cc_minor, (double)g->free_mem / (1 << 30), (double)g->total_mem / (1 << 30), g->uuid,
                         g->integrated ? ", integrated" : "");
            if (g->nvml)
                cn_sb_printf(&sb, ", %d%% busy, %d C, %.0f W", g->util_pct, g->temp_c, g->power_w);
            cn_sb_putc(&sb, '\n');
        }
        if (hw.n_gpus)
            cn_sb_printf(&sb, "NVML     %s\n", hw.nvml_note);
        cn_sb_putc(&sb, '\n');
        if (model_note[0])
            cn_sb_printf(&sb, "note: %s\n", model_note);
        if (st == CANARY_OK)
            cn_profile_text(&prof, &sb);
        else
            cn_sb_printf(&sb, "No usable profile: %s\n", err.msg);
    }
    fputs(cn_sb_str(&sb), stdout);
    cn_sb_free(&sb);
    if (st != CANARY_OK) {
        if (!p.values[0])
            fprintf(stderr, "canary-stt hwinfo: %s\n", err.msg);
        rc = st == CANARY_EINVAL ? 2 : 1; /* a bad setting is a usage error */
    }
out:
    cn_config_free(&cfg);
    return rc;
}
