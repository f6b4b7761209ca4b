<?php
// A response larger than the adapter's 64 KiB buffer: the session goes
// out at the first flush; the change after it is lost (README).
session_start();
$_SESSION['before'] = 1;
echo str_repeat('x', 200 << 10);
$_SESSION['after'] = 1;
