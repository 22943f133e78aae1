// The API docs page of the gateway (/api/docs): Swagger UI over the platform's OpenAPI documents
// (the list comes with the page, from the gateway's route table), and a sign-in form whose
// access token Swagger UI then sends as `Authorization: Bearer …` with "Try it out".
// The token is kept in this tab's sessionStorage only (never localStorage, which /ops, GraphiQL
// and chat on the same origin share and which outlives the browser session), and authorised
// under the bearer schemes of each document as it loads; signing out drops it everywhere.
"use strict";

const documents = JSON.parse(document.getElementById("documents").textContent);

// The key of the token in sessionStorage.
const TOKEN_KEY = "api-docs.token";
// Where Swagger UI's persistAuthorization keeps its authorisations: never written here, and
// removed so no token stays behind in this origin's localStorage.
const PERSISTED_KEY = "authorized";
localStorage.removeItem(PERSISTED_KEY);

function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

// Authorises `token` under each bearer scheme of the document shown; their names.
function authorizeAll(token) {
  const schemes = bearerSchemes();
  for (const name of schemes) ui.preauthorizeApiKey(name, token);
  return schemes;
}

// Each document, once loaded, gets the signed-in token under its bearer schemes.
const KeepToken = () => ({
  statePlugins: {
    spec: {
      wrapActions: {
        updateJsonSpec: (original) => (...args) => {
          const result = original(...args);
          const token = storedToken();
          if (token) authorizeAll(token);
          return result;
        },
      },
    },
  },
});

const ui = SwaggerUIBundle({
  urls: documents,
  "urls.primaryName": documents.length > 0 ? documents[0].name : undefined,
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  plugins: [SwaggerUIBundle.plugins.DownloadUrl, KeepToken],
  layout: "StandaloneLayout",
  // Nothing leaves the gateway's origin: no online validator badge.
  validatorUrl: null,
  // Nothing in localStorage: the token lives in this tab's sessionStorage (KeepToken).
  persistAuthorization: false,
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
// http, scheme bearer, read from the document's JSON as preauthorizeApiKey reads them): the
// token is authorised under each.
function bearerSchemes() {
  const schemes = ui.specSelectors.specJson().getIn(["components", "securitySchemes"]);
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
  sessionStorage.setItem(TOKEN_KEY, body.access_token);
  const schemes = authorizeAll(body.access_token);
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

// Every authorisation Swagger UI holds, whichever document set it, is dropped with the token.
signout.addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(PERSISTED_KEY);
  const authorized = ui.authSelectors.authorized();
  const names = authorized ? [...authorized.keys()] : [];
  ui.authActions.logout([...new Set([...names, ...bearerSchemes()])]);
  signout.hidden = true;
  show("Signed out.", "");
});

// A reload of this tab keeps its sign-in.
if (storedToken()) signout.hidden = false;
