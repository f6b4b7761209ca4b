<?php
// Output first, session after: the adapter holds the output until the
// session's headers are out.
echo '{"sid":"';
session_start();
$_SESSION['late'] = true;
unset($_SESSION['count']);
echo session_id(), '"}';
