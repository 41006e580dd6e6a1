// A real OpenID provider (the `oidc-provider` package) for the end-to-end sign-in tests of
// tests/it/oidc.rs. Test-only: any login name with any password signs in (the package's own
// development log-in pages), and the accounts' claims come from the configuration below.
//
// Usage: node provider.mjs CONFIG_JSON
//   CONFIG_JSON: {"client_id", "client_secret", "redirect_uri", "post_logout_redirect_uri",
//                 "accounts": {"LOGIN": {"name": "...", "groups": ["..."]}}}
// Prints `issuer http://127.0.0.1:PORT` once it listens.
import http from 'node:http';
import Provider from 'oidc-provider';

const config = JSON.parse(process.argv[2]);
const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: config.client_id,
      client_secret: config.client_secret,
      redirect_uris: [config.redirect_uri],
      post_logout_redirect_uris: [config.post_logout_redirect_uri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    // PKCE for every client, not only public ones: rrct sends it and must.
    pkce: { required: () => true },
    claims: { openid: ['sub'], profile: ['name', 'groups'] },
    // The role-mapping claim in the ID token itself, not only at the userinfo endpoint.
    conformIdTokenClaims: false,
    findAccount: async (ctx, id) => ({
      accountId: id,
      claims: async () => ({
        sub: id,
        name: config.accounts[id]?.name ?? id,
        groups: config.accounts[id]?.groups ?? [],
      }),
    }),
    features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
    cookies: { keys: ['test-only-cookie-key'] },
  });
  // The development pages warn on every start; the tests know.
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  server.on('request', provider.callback());
  console.log(`issuer ${issuer}`);
});
