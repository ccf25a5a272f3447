//! The OpenAPI 3.1 description of the admin API, served at `GET /openapi.json`.
//!
//! Contract: hand-written; every path and method here is registered by the router and every
//! registered route is here (the `openapi_matches_router` test checks both directions against
//! the router's route table and the live server). Public routes say `security: []`.

use serde_json::{Value, json};

fn err(desc: &str) -> Value {
    json!({ "description": desc, "content": { "application/json": {
        "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn ok_json(desc: &str, schema: Value) -> Value {
    json!({ "description": desc, "content": { "application/json": { "schema": schema } } })
}

fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn name_param(what: &str) -> Value {
    json!({ "name": "name", "in": "path", "required": true, "description": what,
        "schema": { "type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$" } })
}

fn body(s: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": s } } })
}

/// The document.
pub fn document() -> Value {
    let unauthorized = err("Missing or wrong bearer token (`unauthorized`).");
    let not_found = err("No such session (`not_found`).");
    let invalid = err("Malformed input; the message names the field (`invalid`).");
    let unavailable =
        err("The session is not connected or the operation timed out (`unavailable`).");
    json!({
      "openapi": "3.1.0",
      "info": {
        "title": "wasmeow admin API",
        "version": env!("CARGO_PKG_VERSION"),
        "description": "Manage WhatsApp sessions and Wasm plugins of a running wasmeow host. \
          Every route except /, /healthz and /readyz needs `Authorization: Bearer <token>`. \
          Errors are `{\"error\": \"...\", \"code\": \"...\"}`."
      },
      "security": [ { "bearer": [] } ],
      "paths": {
        "/": { "get": {
          "summary": "The pairing and status web page (HTML; it asks for the token itself).",
          "operationId": "page", "security": [],
          "responses": { "200": { "description": "HTML page",
            "content": { "text/html": { "schema": { "type": "string" } } } } } } },
        "/healthz": { "get": {
          "summary": "Liveness: 200 while the process serves.", "operationId": "healthz",
          "security": [],
          "responses": { "200": ok_json("Alive", json!({ "type": "object" })) } } },
        "/readyz": { "get": {
          "summary": "Readiness: store open, plugins loaded, not shutting down.",
          "operationId": "readyz", "security": [],
          "responses": {
            "200": ok_json("Ready", json!({ "type": "object" })),
            "503": ok_json("Not ready", json!({ "type": "object" })) } } },
        "/metrics": { "get": {
          "summary": "Prometheus text exposition.", "operationId": "metrics",
          "responses": {
            "200": { "description": "Metrics", "content": { "text/plain": { "schema": { "type": "string" } } } },
            "401": unauthorized } } },
        "/openapi.json": { "get": {
          "summary": "This document.", "operationId": "openapi",
          "responses": { "200": ok_json("OpenAPI 3.1", json!({ "type": "object" })), "401": unauthorized } } },
        "/v1/sessions": {
          "get": { "summary": "Every session, sorted by name.", "operationId": "listSessions",
            "responses": {
              "200": ok_json("Sessions", json!({ "type": "array", "items": schema("SessionStatus") })),
              "401": unauthorized } },
          "post": { "summary": "Create and start a session (admission control applies).",
            "operationId": "createSession", "requestBody": body(schema("NewSession")),
            "responses": {
              "201": ok_json("Created", schema("SessionStatus")),
              "400": invalid, "401": unauthorized,
              "409": err("A session with that name exists (`conflict`)."),
              "413": err("Body too large (`too_large`)."),
              "503": err("Admission refused (`overloaded`).") } } },
        "/v1/sessions/{name}": {
          "get": { "summary": "One session.", "operationId": "getSession",
            "parameters": [ name_param("Session name") ],
            "responses": { "200": ok_json("Session", schema("SessionStatus")),
              "400": invalid, "401": unauthorized, "404": not_found } },
          "delete": { "summary": "Stop a session and delete its store namespace.",
            "operationId": "removeSession",
            "parameters": [ name_param("Session name"),
              { "name": "logout", "in": "query", "required": false,
                "description": "Unlink the device from the phone first.",
                "schema": { "type": "boolean", "default": false } } ],
            "responses": { "204": { "description": "Removed" },
              "400": invalid, "401": unauthorized, "404": not_found } } },
        "/v1/sessions/{name}/logout": { "post": {
          "summary": "Unlink the device; the session then shows a fresh QR.",
          "operationId": "logoutSession", "parameters": [ name_param("Session name") ],
          "responses": { "204": { "description": "Logged out" },
            "400": invalid, "401": unauthorized, "404": not_found, "503": unavailable } } },
        "/v1/sessions/{name}/pair-code": { "post": {
          "summary": "Start phone-number pairing; returns the code to type on the phone.",
          "operationId": "pairCode", "parameters": [ name_param("Session name") ],
          "requestBody": body(schema("PairCodeRequest")),
          "responses": { "200": ok_json("Pairing code", schema("PairCodeResponse")),
            "400": invalid, "401": unauthorized, "404": not_found, "503": unavailable } } },
        "/v1/sessions/{name}/qr": { "get": {
          "summary": "The current QR string and a terminal rendering (half blocks).",
          "operationId": "qrText", "parameters": [ name_param("Session name") ],
          "responses": { "200": ok_json("QR", schema("QrText")),
            "400": invalid, "401": unauthorized,
            "404": err("No such session (`not_found`), or it shows no QR (`no_qr`).") } } },
        "/v1/sessions/{name}/qr.png": { "get": {
          "summary": "The current QR as a PNG image.", "operationId": "qrPng",
          "parameters": [ name_param("Session name") ],
          "responses": {
            "200": { "description": "PNG", "content": { "image/png": {
              "schema": { "type": "string", "contentEncoding": "binary" } } } },
            "400": invalid, "401": unauthorized,
            "404": err("No such session (`not_found`), or it shows no QR (`no_qr`).") } } },
        "/v1/sessions/{name}/messages": { "post": {
          "summary": "Send a text message through the session's outbox.",
          "operationId": "sendMessage", "parameters": [ name_param("Session name") ],
          "requestBody": body(schema("SendRequest")),
          "responses": { "200": ok_json("Queued", schema("Sent")),
            "400": invalid, "401": unauthorized, "404": not_found,
            "413": err("Body too large (`too_large`)."), "503": unavailable } } },
        "/v1/plugins": { "get": {
          "summary": "Loaded plugins, sorted by name.", "operationId": "listPlugins",
          "responses": {
            "200": ok_json("Plugins", json!({ "type": "array", "items": schema("PluginInfo") })),
            "401": unauthorized } } },
        "/v1/plugins/{name}/reload": { "post": {
          "summary": "Reload a plugin from its file now.", "operationId": "reloadPlugin",
          "parameters": [ name_param("Plugin name") ],
          "responses": { "200": ok_json("Reloaded", schema("PluginInfo")),
            "400": invalid, "401": unauthorized, "404": err("No such plugin (`not_found`).") } } },
        "/v1/campaigns": { "get": {
          "summary": "Campaigns from bot.toml with their current or last run, sorted by name.",
          "operationId": "listCampaigns",
          "responses": {
            "200": ok_json("Campaigns", json!({ "type": "array", "items": schema("CampaignStatus") })),
            "401": unauthorized } } },
        "/v1/campaigns/{name}/run": { "post": {
          "summary": "Start a run now (409 while one is going).", "operationId": "runCampaign",
          "parameters": [ name_param("Campaign name") ],
          "responses": { "200": ok_json("Started", schema("CampaignStatus")),
            "400": err("Malformed name, or the campaign is disabled (`invalid`)."),
            "401": unauthorized, "404": err("No such campaign (`not_found`)."),
            "409": err("A run is already going (`conflict`)."),
            "503": err("The campaign's session is not running (`unavailable`).") } } },
        "/v1/campaigns/{name}/pause": { "post": {
          "summary": "Pause the running run.", "operationId": "pauseCampaign",
          "parameters": [ name_param("Campaign name") ],
          "responses": { "200": ok_json("Paused", schema("CampaignStatus")),
            "400": invalid, "401": unauthorized, "404": err("No such campaign (`not_found`)."),
            "409": err("No run is going (`conflict`)."),
            "503": err("The campaign's session is not running (`unavailable`).") } } },
        "/v1/campaigns/{name}/resume": { "post": {
          "summary": "Resume a paused run.", "operationId": "resumeCampaign",
          "parameters": [ name_param("Campaign name") ],
          "responses": { "200": ok_json("Resumed", schema("CampaignStatus")),
            "400": invalid, "401": unauthorized, "404": err("No such campaign (`not_found`)."),
            "409": err("No run is going (`conflict`)."),
            "503": err("The campaign's session is not running (`unavailable`).") } } },
        "/v1/campaigns/{name}/cancel": { "post": {
          "summary": "Cancel the running run; recipients not reached yet get nothing.",
          "operationId": "cancelCampaign", "parameters": [ name_param("Campaign name") ],
          "responses": { "200": ok_json("Cancelled", schema("CampaignStatus")),
            "400": invalid, "401": unauthorized, "404": err("No such campaign (`not_found`)."),
            "409": err("No run is going (`conflict`)."),
            "503": err("The campaign's session is not running (`unavailable`).") } } },
        "/v1/events": { "get": {
          "summary": "Server-sent events: `event: <HostEvent.event>`, `data: <HostEvent JSON>`; \
            `event: lagged` with `{\"missed\": n}` when the client fell behind; keep-alive comments.",
          "operationId": "events",
          "parameters": [
            { "name": "session", "in": "query", "required": false,
              "description": "Only this session's events.", "schema": { "type": "string" } },
            { "name": "token", "in": "query", "required": false,
              "description": "The bearer token, for EventSource clients that cannot set headers.",
              "schema": { "type": "string" } } ],
          "responses": {
            "200": { "description": "Event stream", "content": { "text/event-stream": {
              "schema": { "type": "string",
                "description": "Each event's data line is a HostEvent (see components)." } } } },
            "400": invalid, "401": unauthorized } } }
      },
      "components": {
        "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
        "schemas": {
          "Error": { "type": "object", "required": ["error", "code"], "properties": {
            "error": { "type": "string" },
            "code": { "type": "string", "enum": ["invalid", "unauthorized", "not_found", "no_qr",
              "no_route", "method_not_allowed", "conflict", "too_large", "unsupported_media_type",
              "internal", "overloaded", "unavailable"] } } },
          "SessionState": { "type": "string", "enum": ["connecting", "qr", "connected",
            "disconnected", "logged_out", "failed", "stopped"] },
          "SessionStatus": { "type": "object",
            "required": ["name", "state", "outbox_depth"],
            "properties": {
              "name": { "type": "string" },
              "state": schema("SessionState"),
              "jid": { "type": ["string", "null"] },
              "qr": { "type": ["string", "null"], "description": "Set while state is qr." },
              "pair_code": { "type": ["string", "null"] },
              "reason": { "type": ["string", "null"] },
              "outbox_depth": { "type": "integer", "minimum": 0 } } },
          "NewSession": { "type": "object", "required": ["name"], "properties": {
            "name": { "type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$" },
            "server": { "type": ["string", "null"], "description": "ws:// or wss:// URL" },
            "root_key": { "type": ["string", "null"], "pattern": "^[0-9a-fA-F]{64}$" },
            "push_name": { "type": ["string", "null"], "maxLength": 64 } } },
          "PairCodeRequest": { "type": "object", "required": ["phone"],
            "additionalProperties": false, "properties": {
              "phone": { "type": "string", "pattern": "^\\+?[0-9]{7,15}$" } } },
          "PairCodeResponse": { "type": "object", "required": ["code"], "properties": {
            "code": { "type": "string", "description": "XXXX-XXXX" } } },
          "QrText": { "type": "object", "required": ["code", "ascii"], "properties": {
            "code": { "type": "string" },
            "ascii": { "type": "string", "description": "Half-block rendering; light modules are blocks." } } },
          "SendRequest": { "type": "object", "required": ["chat", "text"],
            "additionalProperties": false, "properties": {
              "chat": { "type": "string", "description": "user@server JID" },
              "text": { "type": "string", "minLength": 1, "description": "At most 65536 bytes." } } },
          "Sent": { "type": "object", "required": ["id"], "properties": {
            "id": { "type": "string" } } },
          "PluginInfo": { "type": "object",
            "required": ["name", "version", "health", "handled", "failures"], "properties": {
              "name": { "type": "string" },
              "version": { "type": "integer", "minimum": 0 },
              "health": { "type": "string", "enum": ["running", "restarting", "quarantined"] },
              "handled": { "type": "integer", "minimum": 0 },
              "failures": { "type": "integer", "minimum": 0 } } },
          "CampaignRun": { "type": "object",
            "required": ["slot_ms", "started_ms", "cancelled", "paused", "queued", "failed",
              "opted_out", "remaining"],
            "properties": {
              "slot_ms": { "type": "integer", "description": "Scheduled start served (Unix ms)." },
              "started_ms": { "type": "integer" },
              "finished_ms": { "type": ["integer", "null"] },
              "cancelled": { "type": "boolean" },
              "paused": { "type": "boolean" },
              "queued": { "type": "integer", "minimum": 0 },
              "failed": { "type": "integer", "minimum": 0 },
              "opted_out": { "type": "integer", "minimum": 0 },
              "remaining": { "type": "integer", "minimum": 0 },
              "next_send_ms": { "type": ["integer", "null"] } } },
          "CampaignStatus": { "type": "object",
            "required": ["name", "session", "enabled", "schedule", "recipients", "skipped_slots"],
            "properties": {
              "name": { "type": "string" },
              "session": { "type": "string" },
              "enabled": { "type": "boolean" },
              "schedule": { "type": "string", "description": "Cron expression (time zone)" },
              "next_run_ms": { "type": ["integer", "null"] },
              "recipients": { "type": "integer", "minimum": 0 },
              "run": { "oneOf": [ schema("CampaignRun"), { "type": "null" } ] },
              "skipped_slots": { "type": "integer", "minimum": 0 } } },
          "HostEvent": { "type": "object", "required": ["session", "event", "at_ms", "data"],
            "properties": {
              "session": { "type": "string" },
              "event": { "type": "string", "description": "qr, authenticated, disconnected, auth_failure, logged_out, message, session_added, session_removed" },
              "at_ms": { "type": "integer", "minimum": 0 },
              "data": {} } }
        }
      }
    })
}
