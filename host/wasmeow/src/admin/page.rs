//! The operator's web page at `GET /`: every session with its state, and the QR code to scan
//! while a session waits for pairing, updated live; buttons to add, pair by code, log out and
//! remove sessions.
//!
//! Contract: one self-contained HTML document (inline CSS and JS, no external resources, so the
//! strict CSP in the handler holds). The page is public; it reads the token from the URL
//! fragment (`/#token=…`, never sent to the server, removed from the address bar at once) or a
//! login form, keeps it in `sessionStorage`, and sends it only as `Authorization: Bearer` on
//! its API calls, including the event stream (read with `fetch` streaming, not `EventSource`),
//! so it never appears in a URL. Stable hooks for tests: `#sessions` (the list), one
//! `li#session-<name>` per session with `data-state="<state>"`, `#state-<name>` (the state's
//! text), `img#qr-<name>` (only while the state is `qr`; its `src` is a blob URL of
//! `qr.png`), `#live` with `data-live="true"` while the event stream is open, `#login` (shown
//! when no or a wrong token is known).
//!
//! Operator actions call the REST routes with the same bearer header, and show the API's error
//! message in `#error` when refused: `form#add-form` (`#add-name`, optional `#add-server` and
//! `#add-root-key`; `POST /v1/sessions`); per session `#pair-<name>` opens
//! `form#pair-form-<name>` (`#pair-phone-<name>`, submit `#pair-submit-<name>`; `POST
//! …/pair-code`) and the code is shown in `#code-<name>` until the session connects;
//! `#logout-<name>` (`POST …/logout`, enabled only while paired); `#remove-<name>` opens the
//! confirmation `#confirm-<name>` (`#remove-logout-<name>` to unlink first, `#remove-yes-<name>`,
//! `#remove-no-<name>`; `DELETE /v1/sessions/<name>[?logout=true]`).

/// The page.
pub(crate) const HTML: &str = include_str!("page.html");
