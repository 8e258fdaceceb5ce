/*
 * mod_decision: OpenTelemetry (common/dc_otel.h) inside httpd.
 *
 * Settings: each DecisionOTel* directive (main server only) names one OTEL_*
 * variable; a variable without its directive is read from httpd's own
 * environment (Debian: /etc/apache2/envvars, or systemd's Environment=), as
 * an SDK would. They are checked in check_config, so `apachectl configtest`
 * fails on a bad value and names the directive or the variable.
 *
 * Lifetimes: the tracer is built in post_config in pconf (one per
 * generation) and shared by every service. Each child starts its exporter
 * thread in child_init; a cleanup of the child's pool stops it, exporting
 * the spans that ended, within DECISION_OTEL_FLUSH: that runs when a child
 * exits for any reason (graceful restart, MaxConnectionsPerChild, stop).
 * Metrics are exported by the child that runs the watchdog singleton (one
 * callback per service tells its exporter to), so they are sent once, not
 * once per child, and another child takes over when that one exits.
 */
#include "mod_decision.h"

#include "dc_log.h"
#include "dc_otel.h"

#include "http_log.h"
#include "mod_watchdog.h"

#include <apr_strings.h>
#include <stdlib.h>
#include <string.h>

#define DECISION_OTEL_FLUSH apr_time_from_sec(3)

const char *decision_otel_set(cmd_parms *cmd, void *dc, const char *arg)
{
    decision_srv_conf_t *c = ap_get_module_config(cmd->server->module_config, &decision_module);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    if (err)
        return err;
    if (!c->otel_settings)
        c->otel_settings = apr_table_make(cmd->pool, 8);
    apr_table_set(c->otel_settings, cmd->info, arg);
    return NULL;
}

/* dc_otel_getter_fn: the directive's value, else httpd's environment. */
static const char *lookup(void *baton, const char *name)
{
    const decision_srv_conf_t *c = baton;
    const char *v = c->otel_settings ? apr_table_get(c->otel_settings, name) : NULL;

    return v ? v : getenv(name);
}

/* Reads the settings; NULL, or the error naming the directive when one gave the value. */
static const char *read_options(apr_pool_t *p, server_rec *main_s, dc_otel_options_t *o)
{
    decision_srv_conf_t *c = ap_get_module_config(main_s->module_config, &decision_module);
    const char *err = dc_otel_options_read(o, p, lookup, c, "httpd");

    if (!err)
        return NULL;
    /* the directives are the module's commands whose handler is ours */
    for (const command_rec *cmd = decision_module.cmds; cmd && cmd->name; cmd++) {
        const char *variable = cmd->cmd_data;
        size_t n;

        if (cmd->AP_TAKE1 != decision_otel_set)
            continue;
        n = strlen(variable);
        if (strncmp(err, variable, n) == 0 && err[n] == ':')
            return c->otel_settings && apr_table_get(c->otel_settings, variable)
                       ? apr_pstrcat(p, cmd->name, " (", variable, ")", err + n, NULL)
                       : apr_pstrcat(p, err, " (from httpd's environment)", NULL);
    }
    return err;
}

const char *decision_otel_check(apr_pool_t *ptemp, server_rec *main_s)
{
    dc_otel_options_t o;

    return read_options(ptemp, main_s, &o);
}

static apr_status_t export_metrics(int state, void *data, apr_pool_t *p)
{
    decision_service_t *svc = data;

    if (state == AP_WATCHDOG_STATE_STARTING)
        dc_otel_export_metrics_here(svc->api.otel, &svc->api, NULL, NULL);
    return APR_SUCCESS;
}

const char *decision_otel_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *main_s)
{
    decision_srv_conf_t *mc = ap_get_module_config(main_s->module_config, &decision_module);
    dc_otel_options_t o;
    dc_metrics_t *figures = NULL;
    const char *err = read_options(pconf, main_s, &o);

    mc->otel = NULL;
    if (err)
        return err;
    if (!o.enabled)
        return NULL;
    for (server_rec *s = main_s; s && !figures; s = s->next) {
        decision_srv_conf_t *c = ap_get_module_config(s->module_config, &decision_module);

        if (c->svc)
            figures = c->svc->api.metrics;
    }
    mc->otel = dc_otel_create(pconf, &o, figures);
    if (!mc->otel)
        return "cannot create the OpenTelemetry tracer";
    for (server_rec *s = main_s; s; s = s->next) {
        decision_srv_conf_t *c = ap_get_module_config(s->module_config, &decision_module);

        if (!c->svc || c->svc->api.otel)
            continue; /* not configured, or a service already seen (a vhost sharing it) */
        c->svc->api.otel = mc->otel;
        if (!o.metrics_url)
            continue;
        decision_singleton_register(pconf, apr_time_from_sec(1), export_metrics, c->svc);
    }
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, main_s,
                 DCLOGNO(10911) "OpenTelemetry: traces to %s, metrics to %s, service %s",
                 o.traces_url ? o.traces_url : "(off)", o.metrics_url ? o.metrics_url : "(off)",
                 o.service_name);
    return NULL;
}

static apr_status_t stop_exporter(void *data)
{
    dc_otel_stop(data, DECISION_OTEL_FLUSH);
    return APR_SUCCESS;
}

void decision_otel_child_init(apr_pool_t *pchild, server_rec *main_s)
{
    decision_srv_conf_t *mc = ap_get_module_config(main_s->module_config, &decision_module);

    if (!mc->otel || dc_otel_start(mc->otel) < 0)
        return;
    apr_pool_cleanup_register(pchild, mc->otel, stop_exporter, apr_pool_cleanup_null);
}
