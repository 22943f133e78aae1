// The API docs page of the gateway (/api/docs): Swagger UI over the platform's OpenAPI documents
// (the list comes with the page, from the gateway's route table), and a sign-in form whose
// access token Swagger UI then sends as `Authorization: Bearer …` with "Try it out".
"use strict";

const documents = JSON.parse(document.getElementById("documents").textContent);

const ui = SwaggerUIBundle({
  urls: documents,
  "urls.primaryName": documents.length > 0 ? documents[0].name : undefined,
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  plugins: [SwaggerUIBundle.plugins.DownloadUrl],
  layout: "StandaloneLayout",
  // Nothing leaves the gateway's origin: no online validator badge.
  validatorUrl: null,
  // The token outlives a switch of document and a reload (this origin's localStorage).
  persistAuthorization: true,
  queryConfigEnabled: false,
});
window.ui = ui;

const form = document.getElementById("signin");
const status = document.getElementById("signin-status");
const signout = document.getElementById("signout");

function show(text, kind) {
  status.textContent = text;
  status.className = kind;
}

// The names of the current document's bearer schemes (components.securitySchemes of type
// http, scheme bearer): the token is authorised under each.
function bearerSchemes() {
  const schemes = ui.specSelectors.securityDefinitions();
  if (!schemes) return [];
  return [...schemes.entries()]
    .filter(([, scheme]) => scheme.get("type") === "http" && String(scheme.get("scheme")).toLowerCase() === "bearer")
    .map(([name]) => name);
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  show("Signing in…", "");
  let response;
  try {
    response = await fetch("/api/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({
        email: document.getElementById("signin-email").value,
        password: document.getElementById("signin-password").value,
      }),
    });
  } catch (error) {
    show(`Sign-in failed: ${error}`, "error");
    return;
  }
  const body = await response.json().catch(() => null);
  if (!response.ok || !body || typeof body.access_token !== "string") {
    const message = body && body.error ? body.error.message : `HTTP ${response.status}`;
    show(`Sign-in failed: ${message}`, "error");
    return;
  }
  const schemes = bearerSchemes();
  for (const name of schemes) ui.preauthorizeApiKey(name, body.access_token);
  document.getElementById("signin-password").value = "";
  signout.hidden = false;
  const who = body.user && body.user.email ? body.user.email : "your account";
  show(
    schemes.length > 0
      ? `Signed in as ${who}: "Try it out" sends your token.`
      : `Signed in as ${who}, but this document declares no bearer scheme.`,
    schemes.length > 0 ? "ok" : "error",
  );
});

signout.addEventListener("click", () => {
  ui.authActions.logout(bearerSchemes());
  signout.hidden = true;
  show("Signed out.", "");
});
