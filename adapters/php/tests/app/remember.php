<?php
// "Remember me": a cookie lifetime given to session_start is the session's
// own ttl at the proxy, with a persistent cookie. (session_set_cookie_params
// is refused by PHP itself while session.use_cookies is 0, as the adapter
// sets it: the proxy keeps the cookie.)
session_start(['cookie_lifetime' => (int) ($_GET['lifetime'] ?? 0)]);
$_SESSION['user'] = $_GET['u'] ?? 'ann';
header('Content-Type: application/json');
echo json_encode(['sid' => session_id()]);
