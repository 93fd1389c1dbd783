// The login page: show the failure notice and carry `next` (where to go after signing in)
// from the query string into the form. The server accepts only same-site paths for it.

const params = new URLSearchParams(location.search);
const next = params.get("next");
if (next && next.startsWith("/") && !next.startsWith("//")) {
  document.querySelector("input[name=next]").value = next;
}
if (params.has("failed")) {
  document.querySelector("[data-testid=login-error]").hidden = false;
}
